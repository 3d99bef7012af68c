"""The DynamoDB store's fleet pages (GET /devices' sort and filter) on moto: every device
once in the asked order, a bounded number of Queries a page, never a Scan, and the
registry's writes spread over the sharded indexes' partitions."""

import collections

import boto3
import pytest
from moto import mock_aws

from cloud.stores import dynamodb
from cloud.stores.base import BadCursor, Delivery, is_stale, matches_status
from cloud.stores.dynamodb import DEVICE_SHARDS, DynamoDBStore, create_tables

NOW = 1_800_000_000
SECRET = "ab" * 32
DEVICES = 64


@pytest.fixture(scope="module")
def moto_fleet():
    """DEVICES boards: every 7th never seen, the others last seen at scattered times (some
    at the same second), a few with sensor errors; calls counted by operation. Made once:
    the tests only read it."""
    with pytest.MonkeyPatch.context() as env, mock_aws():
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
            env.setenv(name, value)
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        client = boto3.client("dynamodb")
        create_tables(client, "readings", "devices")
        store = DynamoDBStore("readings", "devices", client, alerts_table="")
        store.clock = lambda: NOW
        for n in range(DEVICES):
            device_id = f"node-{(n * 37) % DEVICES:03d}"
            store.add_device(device_id, SECRET, 1)
            if n % 7:
                row = store.get_device(device_id)
                seen = NOW - (n * 613) % 20_000 // 10 * 10  # up to 5.5 h ago, ties included
                status = {"sensor_errors": 2} if n % 11 == 0 else {"sensor_errors": 0}
                store.record_delivery(row, Delivery(seen, status, []))
        calls: collections.Counter = collections.Counter()
        client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.update([model.name]))
        yield store, calls


@pytest.fixture
def fleet(moto_fleet):
    moto_fleet[1].clear()
    return moto_fleet


def every_page(store, calls, limit, **view):
    rows, cursor, pages = [], None, 0
    while True:
        calls.clear()
        page, cursor = store.page_devices(limit, cursor, **view)
        assert set(calls) <= {"Query"}, f"a page is Queries only, never a Scan: {calls}"
        assert calls["Query"] <= DEVICE_SHARDS + (dynamodb.FILTER_BUDGET // 100 + 1 if view.get("status") else 1)
        assert len(page) <= limit
        rows += page
        pages += 1
        if cursor is None:
            return rows, pages


def oldest_first(row):
    return (row["last_seen"] or 0, row["device_id"])


def test_pages_in_device_id_order(fleet):
    store, calls = fleet
    rows, pages = every_page(store, calls, 9)
    assert [r["device_id"] for r in rows] == [f"node-{n:03d}" for n in range(DEVICES)]
    assert pages == -(-DEVICES // 9), "no empty last page"
    assert all("secret" not in r for r in rows)


def test_pages_by_last_seen_never_seen_counting_as_oldest(fleet):
    store, calls = fleet
    everyone = list(store.iter_devices())
    rows, _ = every_page(store, calls, 13, sort="last_seen")
    assert [r["device_id"] for r in rows] == [r["device_id"] for r in sorted(everyone, key=oldest_first)]
    assert rows[0]["last_seen"] is None
    newest, _ = every_page(store, calls, 13, sort="-last_seen")
    assert newest == rows[::-1]
    assert newest[-1]["last_seen"] is None and newest[0]["last_seen"] == max(r["last_seen"] or 0 for r in rows)


@pytest.mark.parametrize("status", ["stale", "problems"])
@pytest.mark.parametrize("sort", ["id", "last_seen", "-last_seen"])
def test_filtered_pages_hold_exactly_the_matching_devices(fleet, sort, status):
    store, calls = fleet
    everyone, _ = every_page(store, calls, 100, sort=sort)
    wanted = [r for r in everyone if matches_status(r, status, NOW)]
    assert 0 < len(wanted) < DEVICES
    rows, _ = every_page(store, calls, 8, sort=sort, status=status)
    assert rows == wanted
    if status == "stale":
        assert all(is_stale(r, NOW) for r in rows)


def test_a_filtered_page_reads_a_bounded_part_of_the_fleet(fleet, monkeypatch):
    """With a budget of 10 devices a page, a filter matching few devices answers short
    pages with a cursor rather than reading on: requests stay bounded, nothing is skipped."""
    store, calls = fleet
    monkeypatch.setattr(dynamodb, "FILTER_BUDGET", 16)
    rows, pages = every_page(store, calls, 5, status="stale")
    assert pages >= DEVICES // 16
    assert [r["device_id"] for r in rows] == sorted(r["device_id"] for r in store.iter_devices() if is_stale(r, NOW))


def test_a_cursor_belongs_to_its_sort_and_filter(fleet):
    store, _calls = fleet
    _rows, cursor = store.page_devices(5, sort="last_seen")
    with pytest.raises(BadCursor):
        store.page_devices(5, cursor, sort="id")
    with pytest.raises(BadCursor):
        store.page_devices(5, cursor, sort="last_seen", status="stale")
    with pytest.raises(BadCursor):
        store.page_devices(5, "bm90IG91cnM=", sort="last_seen")
    with pytest.raises(ValueError, match="sort must be one of"):
        store.page_devices(5, sort="name")
    with pytest.raises(ValueError, match="status must be one of"):
        store.page_devices(5, status="broken")


def test_registry_rows_spread_over_the_index_partitions(fleet):
    store, _calls = fleet
    items = store.db.scan(TableName="devices")["Items"]
    shards = collections.Counter(item["fleet_shard"]["S"] for item in items)
    assert len(shards) == DEVICE_SHARDS and max(shards.values()) < DEVICES / 3
    assert all(item["seen_key"]["S"].endswith("#" + item["device_id"]["S"]) for item in items)


def test_rows_from_before_the_sharded_indexes_are_listed_after_the_backfill(aws_env):
    with mock_aws():
        client = boto3.client("dynamodb")
        create_tables(client, "old-readings", "old-devices")  # moto's state is shared with the module's fleet
        store = DynamoDBStore("old-readings", "old-devices", client, alerts_table="")
        store.add_device("new-1", SECRET, 1)
        _backfill(store)


def _backfill(store):
    store.db.put_item(
        TableName=store.devices,
        Item={"device_id": {"S": "old-1"}, "secret": {"S": SECRET}, "kind": {"S": "device"}, "last_seen": {"N": "5"}},
    )
    assert "old-1" not in {r["device_id"] for r in store.iter_devices()}
    assert store.backfill_device_index() == 1
    assert store.backfill_device_index() == 0
    assert store.page_devices(1, sort="last_seen")[0][0]["device_id"] == "new-1", "never-seen devices are older"
    assert "old-1" in {r["device_id"] for r in store.iter_devices()}
