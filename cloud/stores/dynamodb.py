"""DynamoDB store (boto3 low-level client: no resource layer on the cold path).

readings: partition device_id, sort seq (N): a reading's identity, so a re-sent seq can
          never become a second item. LSI `by_time` on tsq ("<ts>#<seq>", zero-padded):
          the latest reading and a time range are each one Query. TTL: expires_at.
rollups:  in the readings table under partition "<device_id>#hour" / "<device_id>#day"
          (a device id has no "#"), seq = the item's start, so the same index reads them.
devices:  partition device_id. Two GSIs list the registry without a per-batch write to one
          partition key: both are partitioned by `fleet_shard` (DEVICE_SHARDS values from the
          device id's CRC-32), so a fleet's writes spread over 16 index partitions;
          `by_id` sorts a shard by device_id, `by_last_seen` by seen_key
          ("<last_seen, 12 digits>#<device_id>", 0 when never seen). Both project everything
          but the secret. A page in either order merges the 16 shards' queries (at most
          16 + 1 requests for a page of up to 100); the whole fleet in id order is a lazy
          merge of the shards' pages (iter_devices: memory of 16 pages, whatever the fleet).
Writes are conditional (attribute_not_exists) in one TransactWriteItems per request (up to
100 readings, DynamoDB's transaction limit): all or nothing. A failed condition returns the
stored item (ReturnValuesOnConditionCheckFailure=ALL_OLD), which tells a re-send (a
duplicate) from another reading under the same seq (a conflict) without another read.
"""

import heapq
import itertools
import json
import os
import random
import re
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from cloud import rollups
from cloud.protocol import MAX_READINGS, Reading
from cloud.stores.base import (
    BadCursor,
    Delivery,
    DeviceExists,
    NoSuchDevice,
    SeqConflict,
    StoreBusy,
    check_device_view,
    decode_cursor,
    decode_reading_cursor,
    encode_cursor,
    health_span,
    matches_status,
    reading_item,
    same_content,
)
from cloud.stores.base import merged_settings as _merged

TRANSACTION_LIMIT = 100
assert MAX_READINGS <= TRANSACTION_LIMIT, "a request's readings must fit one transaction"
# Index partitions the registry's listing spreads over: each takes 1,000 writes/s, and a
# device update writes 1 (by_id) + 2 (by_last_seen, its sort key moves) index units; 16
# keep a fleet of 1M boards reporting every 5 minutes near 420 units/s a partition
# (bench/fleet_capacity.py; tests/deploy/test_capacity.py holds the template to it).
DEVICE_SHARDS = 16
BY_ID = "by_id"
BY_LAST_SEEN = "by_last_seen"
# Everything of a device row but its secret and the index keys.
DEVICE_ATTRIBUTES = [
    "created_at",
    "last_seen",
    "last_status",
    "last_reading",
    "first_seq",
    "max_seq",
    "received",
    "desired",
    "desired_version",
    "ota_target",
]
FLEET_PAGE = 500  # rows a shard query reads while walking the whole fleet (iter_devices)
FILTER_BUDGET = 2000  # devices a filtered page of GET /devices reads at most before it answers
_SEEN_KEY = re.compile(r"[0-9]{12}#[A-Za-z0-9_-]{1,64}")
_DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
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


def _device_cursor(cursor: str, sort: str, status: str) -> str:
    """The index key a page of GET /devices ended at; a cursor of another sort or filter is refused."""
    value = decode_cursor(cursor)
    after = value.get("after") if isinstance(value, dict) else None
    pattern = _DEVICE_ID if sort == "id" else _SEEN_KEY
    if not isinstance(after, str) or not pattern.fullmatch(after):
        raise BadCursor()
    if value.get("sort") != sort or value.get("status") != status:
        raise BadCursor()  # a cursor of another sort or filter
    return after


def client(endpoint_url: str | None = None, pool: int = 10, **session: Any) -> Any:
    """A DynamoDB client with the retry budget above; `pool` connections for a threaded
    server (the Lambda runs one request at a time); `session` takes region and keys."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "total_max_attempts": CALL_ATTEMPTS},
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        max_pool_connections=pool,
    )
    url = endpoint_url or os.environ.get("DYNAMODB_ENDPOINT_URL")
    return boto3.client("dynamodb", endpoint_url=url, config=config, **session)


def device_shard(device_id: str) -> str:
    return f"{zlib.crc32(device_id.encode()) % DEVICE_SHARDS:02d}"


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


class DynamoDBStore:
    def __init__(
        self,
        readings_table: str,
        devices_table: str,
        dynamodb: Any = None,
        alerts_table: str | None = None,
        inline_summaries: bool = False,
    ) -> None:
        self.inline_summaries = inline_summaries
        self.readings = readings_table
        self.devices = devices_table
        self.alerts = os.environ.get("ALERTS_TABLE", "") if alerts_table is None else alerts_table
        self.db = dynamodb or client()
        self.clock: Callable[[], float] = time.time  # "now" of a page's stale and problem filters

    # -- registry -----------------------------------------------------------
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
        return out

    @_throttling_is_store_busy
    def add_device(self, device_id: str, secret_hex: str, created_at: int) -> None:
        from botocore.exceptions import ClientError

        try:
            self.db.put_item(
                TableName=self.devices,
                Item={
                    "device_id": {"S": device_id},
                    "secret": {"S": secret_hex},
                    "fleet_shard": {"S": device_shard(device_id)},
                    "seen_key": {"S": seen_key(None, device_id)},
                    "created_at": _n(created_at),
                    "received": _n(0),
                },
                ConditionExpression="attribute_not_exists(device_id)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise DeviceExists(device_id) from None
            raise

    @_throttling_is_store_busy
    def get_device(self, device_id: str) -> dict[str, Any] | None:
        item = self.db.get_item(TableName=self.devices, Key={"device_id": {"S": device_id}}, ConsistentRead=True).get(
            "Item"
        )
        return self._device(item) if item else None

    def _shard_items(
        self, shard: str, index: str, after: str | None, forward: bool, page: int
    ) -> Iterator[dict[str, Any]]:
        """One shard of an index in its sort order, after `after`, a Query page at a time
        (lazily: the next page is read only when this one is used up)."""
        key = "device_id" if index == BY_ID else "seen_key"
        condition = "fleet_shard = :shard"
        values: dict[str, Any] = {":shard": {"S": shard}}
        if after is not None:
            condition += f" AND {key} {'>' if forward else '<'} :after"
            values[":after"] = {"S": after}
        kwargs: dict[str, Any] = {
            "TableName": self.devices,
            "IndexName": index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": forward,
            "Limit": page,
        }
        while True:
            answer = self.db.query(**kwargs)
            yield from answer["Items"]
            if "LastEvaluatedKey" not in answer:
                return
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
            kwargs["Limit"] = max(page, 100)  # a shard read past its first page is read on in full pages

    def _merged(self, index: str, after: str | None, forward: bool, page: int) -> Iterator[dict[str, Any]]:
        """Every shard of an index merged into one ordered stream of items."""
        key = "device_id" if index == BY_ID else "seen_key"
        shards = [self._shard_items(f"{n:02d}", index, after, forward, page) for n in range(DEVICE_SHARDS)]
        return heapq.merge(*shards, key=lambda item: item[key]["S"], reverse=not forward)

    @_throttling_is_store_busy
    def list_devices(self) -> list[dict[str, Any]]:
        return list(self.iter_devices())

    def iter_devices(self) -> Iterator[dict[str, Any]]:
        with _store_busy_on_throttling():
            for item in self._merged(BY_ID, None, True, FLEET_PAGE):
                yield self._device(item)

    @_throttling_is_store_busy
    def page_devices(
        self, limit: int, cursor: str | None = None, sort: str = "id", status: str = "all"
    ) -> tuple[list[dict[str, Any]], str | None]:
        check_device_view(sort, status)
        if not 1 <= limit <= 100:
            raise ValueError(f"limit must be 1 to 100, got {limit}")
        index, key = (BY_ID, "device_id") if sort == "id" else (BY_LAST_SEEN, "seen_key")
        after = _device_cursor(cursor, sort, status) if cursor else None
        forward = sort != "-last_seen"
        if status == "all":
            # One more than the page: whether another page follows, without a last empty one.
            items = list(itertools.islice(self._merged(index, after, forward, limit + 1), limit + 1))
            rows = [self._device(item) for item in items[:limit]]
            more = len(items) > limit
            last = items[limit - 1][key]["S"] if more else None
        else:
            now = int(self.clock())
            rows, last, read = [], None, 0
            # Shards' first pages sized to the page asked for; a sparse filter reads on.
            stream = self._merged(index, after, forward, min(100, 2 * limit + 1))
            for item in stream:
                if len(rows) == limit or read == FILTER_BUDGET:
                    break
                read += 1
                last = item[key]["S"]
                row = self._device(item)
                if matches_status(row, status, now):
                    rows.append(row)
            else:
                last = None  # the fleet ended within this page
        return rows, (encode_cursor({"after": last, "sort": sort, "status": status}) if last else None)

    def backfill_device_index(self) -> int:
        """Give rows written before the sharded indexes (issue 24) their shard and
        seen_key, so they are listed again; returns how many it updated. A Scan a page at a
        time, run once after the upgrade (docs/deploy.md)."""
        kwargs: dict[str, Any] = {
            "TableName": self.devices,
            "ProjectionExpression": "device_id, last_seen, fleet_shard, seen_key",
        }
        updated = 0
        while True:
            answer = self.db.scan(**kwargs)
            for item in answer["Items"]:
                device_id = item["device_id"]["S"]
                last_seen = int(item["last_seen"]["N"]) if "last_seen" in item else None
                if "fleet_shard" in item and "seen_key" in item:
                    continue
                self.db.update_item(
                    TableName=self.devices,
                    Key={"device_id": {"S": device_id}},
                    UpdateExpression="SET fleet_shard = :shard, seen_key = if_not_exists(seen_key, :seen)",
                    ConditionExpression="attribute_exists(device_id)",
                    ExpressionAttributeValues={
                        ":shard": {"S": device_shard(device_id)},
                        ":seen": {"S": seen_key(last_seen, device_id)},
                    },
                )
                updated += 1
            if "LastEvaluatedKey" not in answer:
                return updated
            kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def _on_existing(self, operation: str, device_id: str, **kwargs: Any) -> None:
        """update_item or delete_item of a device row that must exist."""
        from botocore.exceptions import ClientError

        try:
            getattr(self.db, operation)(
                TableName=self.devices,
                Key={"device_id": {"S": device_id}},
                ConditionExpression="attribute_exists(device_id)",
                **kwargs,
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise NoSuchDevice(device_id) from None
            raise

    @_throttling_is_store_busy
    def remove_device(self, device_id: str) -> None:
        self._on_existing("delete_item", device_id)

    @_throttling_is_store_busy
    def set_secret(self, device_id: str, secret_hex: str) -> None:
        self._on_existing(
            "update_item",
            device_id,
            UpdateExpression="SET secret = :s",
            ExpressionAttributeValues={":s": {"S": secret_hex}},
        )

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
        from botocore.exceptions import ClientError

        if len(readings) > MAX_READINGS:
            raise ValueError(f"at most {MAX_READINGS} readings per call (one request), got {len(readings)}")
        pending = list(readings)
        deadline = time.monotonic() + WRITE_BUDGET_S
        for attempt in range(WRITE_ATTEMPTS):
            if not pending:
                return []
            try:
                self.db.transact_write_items(
                    TransactItems=[self._put(device_id, r, received_at, expires_at) for r in pending]
                )
                return pending
            except ClientError as error:
                reasons = error.response.get("CancellationReasons") or []
                codes = {why.get("Code") for why in reasons}
                if (
                    error.response["Error"]["Code"] != "TransactionCanceledException"
                    or len(reasons) != len(pending)
                    or not codes <= {"None", "ConditionalCheckFailed", *TRANSIENT_REASONS}
                ):
                    raise
            held = {
                r.seq: _stored_reading(why)
                for r, why in zip(pending, reasons, strict=True)
                if why["Code"] == "ConditionalCheckFailed"
            }
            conflicts = [r.seq for r in pending if r.seq in held and not same_content(held[r.seq], r)]
            if conflicts:
                raise SeqConflict(conflicts, self._highest_seq(device_id) + 1)
            pending = [r for r in pending if r.seq not in held]  # the rest are duplicates
            if codes & TRANSIENT_REASONS:
                pause = random.uniform(0, RETRY_BASE_S * 2**attempt)  # full jitter: racing writers spread out
                if attempt + 1 == WRITE_ATTEMPTS or time.monotonic() + pause > deadline:
                    break
                time.sleep(pause)
        if not pending:
            return []
        raise StoreBusy(
            "the readings transaction was cancelled by throttling or other writes until its retries ran out"
        )

    def _highest_seq(self, device_id: str) -> int:
        # Only on a conflict: the device row's max_seq lags when a request ends between the
        # readings write and the row update, and a stale next_seq would cost the board a round.
        items = self.db.query(
            TableName=self.readings,
            KeyConditionExpression="device_id = :d",
            ExpressionAttributeValues={":d": {"S": device_id}},
            ProjectionExpression="seq",
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )["Items"]
        return int(items[0]["seq"]["N"])

    @_throttling_is_store_busy
    def record_delivery(self, device: dict[str, Any], delivery: Delivery) -> None:
        # Seq bounds and the last reading are computed from the row read for this request:
        # a device posts one batch at a time, so a lost race only delays the health figures.
        in_span = health_span(device, [r.seq for r in delivery.stored])
        values: dict[str, Any] = {
            ":now": _n(delivery.now),
            ":n": _n(len(in_span)),
            ":seen": {"S": seen_key(delivery.now, device["device_id"])},
        }
        sets = ["last_seen = :now", "seen_key = :seen"]
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
        self.db.update_item(
            TableName=self.devices,
            Key={"device_id": {"S": device["device_id"]}},
            UpdateExpression="SET " + ", ".join(sets) + " ADD received :n",
            ExpressionAttributeValues=values,
        )

    @_throttling_is_store_busy
    def latest_reading(self, device_id: str) -> dict[str, Any] | None:
        items = self.db.query(
            TableName=self.readings,
            IndexName="by_time",
            KeyConditionExpression="device_id = :d",
            ExpressionAttributeValues={":d": {"S": device_id}},
            ScanIndexForward=False,
            Limit=1,
        )["Items"]
        return _reading(items[0]) if items else None

    @_throttling_is_store_busy
    def query_readings(
        self,
        device_id: str,
        from_ts: int | None = None,
        to_ts: int | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        low = tsq(from_ts if from_ts is not None else 0, 0)
        high = tsq(to_ts if to_ts is not None else 10**12 - 1, 10**16 - 1)
        kwargs: dict[str, Any] = {
            "TableName": self.readings,
            "IndexName": "by_time",
            "KeyConditionExpression": "device_id = :d AND tsq BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {":d": {"S": device_id}, ":lo": {"S": low}, ":hi": {"S": high}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            # The same cursor as the SQLite store's: (ts, seq) of the page's last reading. The
            # Query resumes at that index key, so a deep page costs what the first does.
            ts, seq = decode_reading_cursor(cursor)
            kwargs["ExclusiveStartKey"] = {"device_id": {"S": device_id}, "seq": _n(seq), "tsq": {"S": tsq(ts, seq)}}
        page = self.db.query(**kwargs)
        items = [_reading(item) for item in page["Items"]]
        more = "LastEvaluatedKey" in page and len(items) == limit
        return items, (encode_cursor([items[-1]["ts"], items[-1]["seq"]]) if more else None)

    # -- alerts (docs/alerts.md) ----------------------------------------------
    # One table, pk/sk: ("rule", id) the rule; ("secret", id) its webhook URL and key, an
    # item the read role cannot reach (IAM dynamodb:LeadingKeys); ("state", device#rule);
    # ("event", "<at>-<random>") the history, expired by TTL after 30 days.
    def _alert_key(self, pk: str, sk: str) -> dict[str, Any]:
        return {"pk": {"S": pk}, "sk": {"S": sk}}

    def _alert_query(self, pk: str, **extra: Any) -> list[dict[str, Any]]:
        values = {":pk": {"S": pk}, **extra.pop("values", {})}
        condition = "pk = :pk" + extra.pop("and_sk", "")
        kwargs: dict[str, Any] = {
            "TableName": self.alerts,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            **extra,
        }
        items: list[dict[str, Any]] = []
        while True:
            page = self.db.query(**kwargs)
            items += page["Items"]
            if "LastEvaluatedKey" not in page or ("Limit" in kwargs and len(items) >= kwargs["Limit"]):
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def put_alert_rule(self, rule: dict[str, Any], secret: dict[str, str] | None) -> None:
        puts = [
            {
                "Put": {
                    "TableName": self.alerts,
                    "Item": {**self._alert_key("rule", rule["rule_id"]), "rule": {"S": json.dumps(rule)}},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        if secret:
            item = {
                **self._alert_key("secret", rule["rule_id"]),
                "webhook_url": {"S": secret["webhook_url"]},
                "webhook_secret": {"S": secret["webhook_secret"]},
            }
            puts.append({"Put": {"TableName": self.alerts, "Item": item}})
        self.db.transact_write_items(TransactItems=puts)

    def list_alert_rules(self) -> list[dict[str, Any]]:
        return [
            {**json.loads(item["rule"]["S"]), "last_delivery": _json_attr(item, "last_delivery")}
            for item in self._alert_query("rule")
        ]

    def get_alert_secret(self, rule_id: str) -> dict[str, str] | None:
        item = self.db.get_item(TableName=self.alerts, Key=self._alert_key("secret", rule_id)).get("Item")
        return (
            {"webhook_url": item["webhook_url"]["S"], "webhook_secret": item["webhook_secret"]["S"]} if item else None
        )

    def remove_alert_rule(self, rule_id: str) -> None:
        from botocore.exceptions import ClientError

        from cloud.alerts.rules import NoSuchRule

        try:
            self.db.delete_item(
                TableName=self.alerts,
                Key=self._alert_key("rule", rule_id),
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise NoSuchRule(rule_id) from None
            raise
        self.db.delete_item(TableName=self.alerts, Key=self._alert_key("secret", rule_id))
        for state in self.alert_states():
            if state["rule_id"] == rule_id:
                self.db.delete_item(
                    TableName=self.alerts, Key=self._alert_key("state", f"{state['device_id']}#{rule_id}")
                )

    def record_alert_delivery(self, rule_id: str, event_id: str | None, delivery: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        value = {":d": {"S": json.dumps(delivery)}}
        targets = [("rule", rule_id)] + ([("event", event_id)] if event_id else [])
        for pk, sk in targets:
            try:
                self.db.update_item(
                    TableName=self.alerts,
                    Key=self._alert_key(pk, sk),
                    UpdateExpression="SET last_delivery = :d",
                    ConditionExpression="attribute_exists(pk)",  # a rule removed meanwhile stays removed
                    ExpressionAttributeValues=value,
                )
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise

    def alert_states(self, device_id: str | None = None) -> list[dict[str, Any]]:
        extra: dict[str, Any] = {}
        if device_id is not None:
            extra = {"and_sk": " AND begins_with(sk, :device)", "values": {":device": {"S": device_id + "#"}}}
        return [
            {**json.loads(item["state"]["S"]), "version": int(item["version"]["N"])}
            for item in self._alert_query("state", **extra)
        ]

    def iter_alert_states(self) -> Iterator[dict[str, Any]]:
        """Ordered by sk, "<device_id>#<rule_id>": by device id, then rule ("#" sorts before
        every character of a device id), a Query page at a time."""
        kwargs: dict[str, Any] = {
            "TableName": self.alerts,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": "state"}},
        }
        with _store_busy_on_throttling():
            while True:
                answer = self.db.query(**kwargs)
                for item in answer["Items"]:
                    yield {**json.loads(item["state"]["S"]), "version": int(item["version"]["N"])}
                if "LastEvaluatedKey" not in answer:
                    return
                kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def put_alert_state(self, state: dict[str, Any], expected_version: int) -> bool:
        """Write `state` if the stored one is still at `expected_version` (0: none stored)."""
        from botocore.exceptions import ClientError

        item = {
            **self._alert_key("state", f"{state['device_id']}#{state['rule_id']}"),
            "state": {"S": json.dumps({k: v for k, v in state.items() if k != "version"})},
            "version": _n(state["version"]),
        }
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        if expected_version:
            condition = {
                "ConditionExpression": "version = :v",
                "ExpressionAttributeValues": {":v": _n(expected_version)},
            }
        try:
            self.db.put_item(TableName=self.alerts, Item=item, **condition)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def add_alert_event(self, event: dict[str, Any], expires_at: int) -> None:
        item = {
            **self._alert_key("event", event["event_id"]),
            "event": {"S": json.dumps(event)},
            "rule_id": {"S": event["rule_id"]},
            "expires_at": _n(expires_at),
        }
        self.db.put_item(TableName=self.alerts, Item=item)

    def alert_events(self, now: int, limit: int = 100, rule_id: str | None = None) -> list[dict[str, Any]]:
        """History newest first, without what has outlived its retention (TTL deletes late)."""
        from cloud.alerts.rules import HISTORY_S

        extra: dict[str, Any] = {
            "and_sk": " AND sk >= :from",
            "values": {":from": {"S": f"{max(0, now - HISTORY_S):012d}"}, ":now": _n(now)},
            "ScanIndexForward": False,
            "FilterExpression": "expires_at > :now",
        }
        if rule_id:
            extra["FilterExpression"] += " AND rule_id = :rule"
            extra["values"][":rule"] = {"S": rule_id}
        else:
            extra["Limit"] = limit
        events = []
        for item in self._alert_query("event", **extra):
            event = json.loads(item["event"]["S"])
            delivery = _json_attr(item, "last_delivery")
            if delivery is not None:
                event["delivery"] = delivery
            events.append(event)
        return events[:limit]

    def prune_alert_events(self, now: int) -> int:
        return 0  # DynamoDB's TTL on expires_at removes them

    # -- rollups (cloud/rollups.py) -------------------------------------------
    def _query_all(self, partition: str, from_ts: int, to_ts: int, consistent: bool) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.readings,
            "IndexName": "by_time",
            "KeyConditionExpression": "device_id = :d AND tsq BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {
                ":d": {"S": partition},
                ":lo": {"S": tsq(from_ts, 0)},
                ":hi": {"S": tsq(to_ts, 10**16 - 1)},
            },
            "ConsistentRead": consistent,
        }
        items: list[dict[str, Any]] = []
        while True:
            page = self.db.query(**kwargs)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def update_rollups(self, device_id: str, readings: list[Reading], expires_at: int) -> None:
        """Ingest's hook. In AWS the summaries are the stream function's work (cloud/summaries.py),
        off the request path: a batch stays within its 4 DynamoDB calls. A store made with
        inline_summaries=True (a local endpoint on DynamoDB) does it here."""
        if self.inline_summaries:
            self.summarise(device_id, [r.ts for r in readings], expires_at)

    @_throttling_is_store_busy
    def summarise(self, device_id: str, timestamps: list[int], expires_at: int) -> None:
        """Recompute the hour and day items these reading times fall in, from what is stored.

        Strongly consistent reads see every reading stored before them; the conditional put
        keeps the item computed from the most readings when two runs race."""
        hours, days = rollups.touched(timestamps)
        for start in hours:
            raw = [_reading(item) for item in self._query_all(device_id, start, start + rollups.HOUR - 1, True)]
            self._put_rollup(device_id, rollups.HOUR_LEVEL, start, rollups.hour_slots(start, raw), expires_at)
        for start in days:
            stored = self._query_all(f"{device_id}#{rollups.HOUR_LEVEL}", start, start + rollups.DAY - 1, True)
            hour_items = {int(item["seq"]["N"]): json.loads(item["slots"]["S"]) for item in stored}
            self._put_rollup(device_id, rollups.DAY_LEVEL, start, rollups.day_slots(start, hour_items), expires_at)

    def _put_rollup(self, device_id: str, level: str, start: int, slots: list[Any], expires_at: int) -> None:
        from botocore.exceptions import ClientError

        n = rollups.count(slots)
        try:
            self.db.put_item(
                TableName=self.readings,
                Item={
                    "device_id": {"S": f"{device_id}#{level}"},
                    "seq": _n(start),
                    "tsq": {"S": tsq(start, 0)},
                    "n": _n(n),
                    "slots": {"S": json.dumps(slots, separators=(",", ":"))},
                    "expires_at": _n(expires_at),
                },
                ConditionExpression="attribute_not_exists(seq) OR n <= :n",
                ExpressionAttributeValues={":n": _n(n)},
            )
        except ClientError as error:
            # A racing request already stored a summary of more readings: keep it.
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    @_throttling_is_store_busy
    def query_rollups(self, device_id: str, level: str, from_ts: int, to_ts: int) -> list[tuple[int, list[Any]]]:
        """The items of a level whose start lies in [from_ts, to_ts], oldest first, as (start, slots)."""
        items = self._query_all(f"{device_id}#{level}", from_ts, to_ts, False)
        return [(int(item["seq"]["N"]), json.loads(item["slots"]["S"])) for item in items]

    # -- fleet management (remote settings) ---------------------------------
    @_throttling_is_store_busy
    def set_desired(self, device_id: str, changes: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        from botocore.exceptions import ClientError

        # Read, merge, write on the condition that nobody wrote a version in between
        # (two operators at once): the loser re-reads and merges again.
        for _ in range(5):
            device = self.get_device(device_id)
            if device is None:
                raise NoSuchDevice(device_id)
            old = device["desired_version"]
            desired = _merged(device["desired"] or {}, changes)
            try:
                self.db.update_item(
                    TableName=self.devices,
                    Key={"device_id": {"S": device_id}},
                    UpdateExpression="SET desired = :d, desired_version = :v",
                    ConditionExpression="attribute_exists(device_id) AND "
                    "(attribute_not_exists(desired_version) OR desired_version = :old)",
                    ExpressionAttributeValues={
                        ":d": {"S": json.dumps(desired, sort_keys=True)},
                        ":v": _n(old + 1),
                        ":old": _n(old),
                    },
                )
            except ClientError as error:
                if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    continue
                raise
            return old + 1, desired
        raise StoreBusy(f"the desired settings of {device_id} kept changing under this update; try again")

    @_throttling_is_store_busy
    def set_ota_target(self, device_id: str, target: dict[str, Any] | None) -> None:
        if target:
            self._on_existing(
                "update_item",
                device_id,
                UpdateExpression="SET ota_target = :t",
                ExpressionAttributeValues={":t": {"S": json.dumps(target)}},
            )
        else:
            self._on_existing("update_item", device_id, UpdateExpression="REMOVE ota_target")


def create_tables(db: Any, readings_table: str, devices_table: str) -> None:
    """The tables as cloud/template.yaml defines them, for moto and DynamoDB Local."""
    db.create_table(
        TableName=readings_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "device_id", "AttributeType": "S"},
            {"AttributeName": "seq", "AttributeType": "N"},
            {"AttributeName": "tsq", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "device_id", "KeyType": "HASH"},
            {"AttributeName": "seq", "KeyType": "RANGE"},
        ],
        LocalSecondaryIndexes=[
            {
                "IndexName": "by_time",
                "KeySchema": [
                    {"AttributeName": "device_id", "KeyType": "HASH"},
                    {"AttributeName": "tsq", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    db.create_table(
        TableName=devices_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "device_id", "AttributeType": "S"},
            {"AttributeName": "fleet_shard", "AttributeType": "S"},
            {"AttributeName": "seen_key", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "device_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": name,
                "KeySchema": [
                    {"AttributeName": "fleet_shard", "KeyType": "HASH"},
                    {"AttributeName": sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(DEVICE_ATTRIBUTES)},
            }
            for name, sort_key in ((BY_ID, "device_id"), (BY_LAST_SEEN, "seen_key"))
        ],
    )


def create_alerts_table(db: Any, alerts_table: str) -> None:
    """The alerts table as cloud/template.yaml defines it."""
    db.create_table(
        TableName=alerts_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
    )


class TablesMismatch(LookupError):
    """The tables are not the ones cloud/template.yaml defines, or the server cannot use them (one line)."""


class TablesMissing(TablesMismatch):
    pass


class _Recorder:
    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {}

    def create_table(self, TableName: str, **definition: Any) -> None:  # noqa: N803 - boto3's argument name
        self.tables[TableName] = definition


def table_definitions(readings_table: str, devices_table: str, alerts_table: str = "") -> dict[str, dict[str, Any]]:
    """create_tables' (and create_alerts_table's) arguments per table: the template's
    definitions (tests/deploy keeps them equal)."""
    recorder = _Recorder()
    create_tables(recorder, readings_table, devices_table)
    if alerts_table:
        create_alerts_table(recorder, alerts_table)
    return recorder.tables


def _index_differences(kind: str, wanted: list[dict[str, Any]], found: list[dict[str, Any]]) -> list[str]:
    by_name = {index["IndexName"]: index for index in found}
    problems = []
    for want in wanted:
        name = want["IndexName"]
        got = by_name.get(name)
        if got is None:
            problems.append(f"no {kind} index {name}")
            continue
        if got["KeySchema"] != want["KeySchema"]:
            problems.append(f"index {name} has keys {_keys(got['KeySchema'])}, not {_keys(want['KeySchema'])}")
        projection, expected = got.get("Projection", {}), want["Projection"]
        if projection.get("ProjectionType") != expected["ProjectionType"] and projection.get("ProjectionType") != "ALL":
            problems.append(
                f"index {name} projects {projection.get('ProjectionType')}, not {expected['ProjectionType']}"
            )
        elif projection.get("ProjectionType") == "INCLUDE":
            absent = sorted(set(expected.get("NonKeyAttributes", [])) - set(projection.get("NonKeyAttributes", [])))
            if absent:
                problems.append(f"index {name} does not project {', '.join(absent)}")
    return problems


def _keys(schema: list[dict[str, str]]) -> str:
    return "(" + ", ".join(f"{key['AttributeName']} {key['KeyType']}" for key in schema) + ")"


def check_tables(db: Any, readings_table: str, devices_table: str, alerts_table: str = "") -> list[str]:
    """Raise TablesMismatch unless the tables exist with the template's keys, attribute types
    and indexes (what the store's queries rely on); return warnings for what only costs money
    or retention (no TTL on the readings table)."""
    from botocore.exceptions import ClientError

    for name, want in table_definitions(readings_table, devices_table, alerts_table).items():
        try:
            got = db.describe_table(TableName=name)["Table"]
        except ClientError as error:
            if error.response["Error"]["Code"] == "ResourceNotFoundException":
                raise TablesMissing(f"table {name} does not exist") from None
            raise
        problems = []
        if got["KeySchema"] != want["KeySchema"]:
            problems.append(f"keys {_keys(got['KeySchema'])}, not {_keys(want['KeySchema'])}")
        types = {a["AttributeName"]: a["AttributeType"] for a in got.get("AttributeDefinitions", [])}
        for attribute in want["AttributeDefinitions"]:
            found = types.get(attribute["AttributeName"])
            if found is not None and found != attribute["AttributeType"]:
                problems.append(f"{attribute['AttributeName']} is of type {found}, not {attribute['AttributeType']}")
        problems += _index_differences(
            "local", want.get("LocalSecondaryIndexes", []), got.get("LocalSecondaryIndexes", [])
        )
        problems += _index_differences(
            "global", want.get("GlobalSecondaryIndexes", []), got.get("GlobalSecondaryIndexes", [])
        )
        if problems:
            raise TablesMismatch(f"table {name} differs from cloud/template.yaml: {'; '.join(problems)}")
    try:
        ttl = db.describe_time_to_live(TableName=readings_table)["TimeToLiveDescription"]
    except ClientError:
        return [f"cannot read the time to live of {readings_table}: readings may never expire"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING") or ttl.get("AttributeName") != "expires_at":
        return [f"table {readings_table} has no time to live on expires_at: readings will never expire"]
    return []


def check_transactions(db: Any, readings_table: str) -> None:
    """Raise TablesMismatch if the server cannot run TransactWriteItems (dynalite cannot).
    The probe is a condition check on a key no reading has: it writes nothing."""
    from botocore.exceptions import ClientError

    probe = {"device_id": {"S": "-"}, "seq": {"N": "-1"}}
    try:
        db.transact_write_items(
            TransactItems=[
                {
                    "ConditionCheck": {
                        "TableName": readings_table,
                        "Key": probe,
                        "ConditionExpression": "attribute_not_exists(seq)",
                    }
                }
            ]
        )
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if code in ("UnknownOperationException", "UnrecognizedClientException", "InvalidAction"):
            raise TablesMismatch(
                "this DynamoDB server does not run TransactWriteItems, which every write of readings uses"
            ) from None
        raise
