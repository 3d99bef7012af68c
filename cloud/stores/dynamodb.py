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
The ingest handler's part (the device row read, the readings written, the row updated)
is IngestStore in cloud/stores/dynamodb_ingest.py, so its cold start compiles that alone.
"""

import heapq
import itertools
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from cloud import rollups
from cloud.protocol import Reading
from cloud.stores.base import (  # noqa: F401 - DEVICE_SHARDS, device_shard: this module's API too
    DEVICE_SHARDS,
    SHARDS,
    BadCursor,
    DeviceExists,
    NoSuchDevice,
    StoreBusy,
    check_device_view,
    decode_cursor,
    decode_reading_cursor,
    device_shard,
    encode_cursor,
    matches_status,
    stale_after_s,
)
from cloud.stores.base import merged_settings as _merged
from cloud.stores.dynamodb_ingest import (  # noqa: F401 - CALL_ATTEMPTS, WRITE_ATTEMPTS, client: this module's API
    CALL_ATTEMPTS,
    WRITE_ATTEMPTS,
    IngestStore,
    _json_attr,
    _n,
    _reading,
    _store_busy_on_throttling,
    _throttling_is_store_busy,
    client,
    seen_key,
    tsq,
)

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
    "name",
    "room",
    "stale_after",
    "errors_at",
    "recent",
]
FLEET_PAGE = 500  # rows a shard query reads while walking the whole fleet (iter_devices)
FILTER_BUDGET = 2000  # devices a filtered page of GET /devices reads at most before it answers
_SEEN_KEY = re.compile(r"[0-9]{12}#[A-Za-z0-9_-]{1,64}")
_DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


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


STATE_PK = "state#"


def _state_key(device_id: str, rule_id: str) -> dict[str, Any]:
    return {"pk": {"S": STATE_PK + device_shard(device_id)}, "sk": {"S": f"{device_id}#{rule_id}"}}


def _state(item: dict[str, Any]) -> dict[str, Any]:
    return {**json.loads(item["state"]["S"]), "version": int(item["version"]["N"])}


class DynamoDBStore(IngestStore):
    def __init__(
        self,
        readings_table: str,
        devices_table: str,
        dynamodb: Any = None,
        alerts_table: str | None = None,
        inline_summaries: bool = False,
    ) -> None:
        super().__init__(readings_table, devices_table, dynamodb)
        self.alerts = os.environ.get("ALERTS_TABLE", "") if alerts_table is None else alerts_table
        self.inline_summaries = inline_summaries
        self.clock: Callable[[], float] = time.time  # "now" of a page's stale and problem filters

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

    def _shard_items(
        self, shard: str, index: str, after: str | None, forward: bool, page: int, next_pages: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """One shard of an index in its sort order, after `after`, a Query page at a time
        (lazily: the next page is read only when this one is used up); pages after the
        first hold `next_pages` rows if given."""
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
            kwargs["Limit"] = next_pages or page

    def _merged(
        self, index: str, after: str | None, forward: bool, page: int, next_pages: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every shard of an index merged into one ordered stream of items."""
        key = "device_id" if index == BY_ID else "seen_key"
        shards = [self._shard_items(shard, index, after, forward, page, next_pages) for shard in SHARDS]
        return heapq.merge(*shards, key=lambda item: item[key]["S"], reverse=not forward)

    @_throttling_is_store_busy
    def list_devices(self) -> list[dict[str, Any]]:
        return list(self.iter_devices())

    def iter_devices(self, shard: str | None = None) -> Iterator[dict[str, Any]]:
        """The fleet (or one shard of it) in device-id order, a page at a time."""
        with _store_busy_on_throttling():
            items = (
                self._merged(BY_ID, None, True, FLEET_PAGE)
                if shard is None
                else self._shard_items(shard, BY_ID, None, True, FLEET_PAGE)
            )
            for item in items:
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
            # A shard read past its first page reads on in pages of 100.
            items = list(itertools.islice(self._merged(index, after, forward, limit + 1, 100), limit + 1))
            rows = [self._device(item) for item in items[:limit]]
            more = len(items) > limit
            last = items[limit - 1][key]["S"] if more else None
        else:
            now = int(self.clock())
            rows, last, read = [], None, 0
            # Shards' first pages sized to the page asked for; a sparse filter reads on.
            stream = self._merged(index, after, forward, min(100, 2 * limit + 1), 100)
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

    @_throttling_is_store_busy
    def get_device_without_secret(self, device_id: str) -> dict[str, Any] | None:
        """get_device (a consistent read) of every attribute but the secret: the calls of a
        role allowed only those (IAM dynamodb:Attributes; the Home Assistant function)."""
        names = ["device_id", *DEVICE_ATTRIBUTES]
        item = self.db.get_item(
            TableName=self.devices,
            Key={"device_id": {"S": device_id}},
            ConsistentRead=True,
            ProjectionExpression=", ".join(f"#a{i}" for i in range(len(names))),
            ExpressionAttributeNames={f"#a{i}": name for i, name in enumerate(names)},
        ).get("Item")
        return self._device(item) if item else None

    @_throttling_is_store_busy
    def find_device(self, device_id: str) -> dict[str, Any] | None:
        # A Query on the fleet index (the device's shard, its id): the read function is
        # granted Query on the indexes only, not GetItem on the registry with its secrets.
        items = self.db.query(
            TableName=self.devices,
            IndexName=BY_ID,
            KeyConditionExpression="fleet_shard = :shard AND device_id = :d",
            ExpressionAttributeValues={":shard": {"S": device_shard(device_id)}, ":d": {"S": device_id}},
        )["Items"]
        return self._device(items[0]) if items else None

    @_throttling_is_store_busy
    def set_labels(self, device_id: str, labels: dict[str, str]) -> None:
        sets, removes, values = [], [], {}
        for field in ("name", "room"):
            if labels.get(field):
                sets.append(f"#{field} = :{field}")
                values[f":{field}"] = {"S": labels[field]}
            elif field in labels:
                removes.append(f"#{field}")
        if not sets and not removes:
            return
        expression = ("SET " + ", ".join(sets) if sets else "") + (" REMOVE " + ", ".join(removes) if removes else "")
        names = {f"#{field}": field for field in ("name", "room") if field in labels}
        self._on_existing(
            "update_item",
            device_id,
            UpdateExpression=expression.strip(),
            ExpressionAttributeNames=names,
            **({"ExpressionAttributeValues": values} if values else {}),
        )

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
    # item the read role cannot reach (IAM dynamodb:LeadingKeys); ("state#<shard>",
    # device#rule), a partition a shard of the fleet (base.device_shard), which the scheduled
    # run of that shard reads alone; ("event", "<at>-<random>") the history, expired by TTL
    # after 30 days.
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
                self.db.delete_item(TableName=self.alerts, Key=_state_key(state["device_id"], rule_id))

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
        if device_id is None:
            return list(self.iter_alert_states())
        extra = {"and_sk": " AND begins_with(sk, :device)", "values": {":device": {"S": device_id + "#"}}}
        return [_state(item) for item in self._alert_query(STATE_PK + device_shard(device_id), **extra)]

    def iter_alert_states(self, shard: str | None = None) -> Iterator[dict[str, Any]]:
        """Ordered by sk, "<device_id>#<rule_id>": by device id, then rule ("#" sorts before
        every character of a device id), a Query page at a time; without `shard`, the
        shards' partitions merged."""
        if shard is None:
            merged = heapq.merge(*(self.iter_alert_states(one) for one in SHARDS), key=lambda s: s["device_id"])
            yield from merged
            return
        kwargs: dict[str, Any] = {
            "TableName": self.alerts,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": STATE_PK + shard}},
            "Limit": FLEET_PAGE,
        }
        with _store_busy_on_throttling():
            while True:
                answer = self.db.query(**kwargs)
                for item in answer["Items"]:
                    yield _state(item)
                if "LastEvaluatedKey" not in answer:
                    return
                kwargs["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    def move_legacy_alert_states(self) -> int:
        """States written before they were kept a partition a shard (pk "state") move to
        theirs, so the scheduled runs see them; run once after the upgrade (docs/deploy.md).
        Returns how many moved."""
        moved = 0
        for item in self._alert_query("state"):
            state = _state(item)
            new = {**item, **_state_key(state["device_id"], state["rule_id"])}
            self.db.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": self.alerts, "Item": new, "ConditionExpression": "attribute_not_exists(pk)"}},
                    {"Delete": {"TableName": self.alerts, "Key": self._alert_key("state", item["sk"]["S"])}},
                ]
            )
            moved += 1
        return moved

    def put_alert_state(self, state: dict[str, Any], expected_version: int) -> bool:
        """Write `state` if the stored one is still at `expected_version` (0: none stored)."""
        from botocore.exceptions import ClientError

        item = {
            **_state_key(state["device_id"], state["rule_id"]),
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
        """A store made with inline_summaries=True (a local endpoint on DynamoDB) summarises
        here; in AWS (IngestStore's) it is the stream function's work."""
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
                    UpdateExpression="SET desired = :d, desired_version = :v, stale_after = :stale",
                    ConditionExpression="attribute_exists(device_id) AND "
                    "(attribute_not_exists(desired_version) OR desired_version = :old)",
                    ExpressionAttributeValues={
                        ":d": {"S": json.dumps(desired, sort_keys=True)},
                        ":v": _n(old + 1),
                        ":stale": _n(stale_after_s(desired)),
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


def _create_table(db: Any, **definition: Any) -> None:
    """CreateTable for a table this call makes. botocore retries a call whose answer did not
    come within READ_TIMEOUT_S (the Lambda's budget; a loaded moto can take longer to make
    a table with indexes), and the retry of a create that did land finds the table it made:
    that is taken as made when its key schema is the one asked for."""
    from botocore.exceptions import ClientError

    try:
        db.create_table(**definition)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceInUseException":
            raise
        found = db.describe_table(TableName=definition["TableName"])["Table"]
        if found["KeySchema"] != definition["KeySchema"]:
            raise


def create_tables(db: Any, readings_table: str, devices_table: str) -> None:
    """The tables as cloud/template.yaml defines them, for moto and DynamoDB Local."""
    _create_table(
        db,
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
    _create_table(
        db,
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
