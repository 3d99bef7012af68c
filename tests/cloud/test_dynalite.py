"""The DynamoDB store against a second, independent emulator: dynalite (tests/emulators),
which enforces DynamoDB's request limits where moto is lenient.

What applies to our store, and who enforces it:
- BatchWriteItem's 25 items: dynalite yes, moto no. The store never calls BatchWriteItem or
  BatchGetItem (checked below on every path a request takes), so no write can meet it.
- TransactWriteItems' 100 items: moto yes (dynalite has no transactions at all); the store
  refuses more than 100 readings before calling (test_store_contract), a request carries
  at most 100 (protocol), and it is one transaction.
- Query's 1 MB page: both; listing devices follows LastEvaluatedKey (tested here with rows
  big enough to need several pages).
dynalite has no TransactWriteItems and no UpdateTimeToLive: the receiver cannot run on it,
and says so in one line."""

import json
import time

import pytest
from botocore.exceptions import ClientError

from cloud import ingest
from cloud.protocol import Reading
from cloud.stores.base import Delivery, device_shard
from cloud.stores.dynamodb import DynamoDBStore, TablesMismatch, check_tables, check_transactions, create_tables
from host_tools.cli import main
from tests.cloud.helpers import DEVICE, SECRET, body_of, post_event, reading
from tests.cloud.servers import dynalite, moto_server, raw_client  # noqa: F401 - fixtures

SECRET2 = "cd" * 32


@pytest.fixture
def store(dynalite, request):  # noqa: F811
    from cloud.stores.dynamodb import client
    from host_tools.dynamodb_server import LOCAL_SESSION

    db = client(dynalite, **LOCAL_SESSION)
    name = request.node.name.replace("[", "-").replace("]", "")[:180]
    create_tables(db, f"{name}-r", f"{name}-d")
    wait_active(db, f"{name}-r", f"{name}-d")
    return DynamoDBStore(f"{name}-r", f"{name}-d", db)


def wait_active(db, *tables):
    """dynalite answers CreateTable with CREATING, as DynamoDB does."""
    deadline = time.monotonic() + 10
    for table in tables:
        while db.describe_table(TableName=table)["Table"]["TableStatus"] != "ACTIVE":
            assert time.monotonic() < deadline, f"{table} never became ACTIVE"
            time.sleep(0.05)


def put_as_the_store_does(store, device_id, readings):
    """The items of the store's own transaction, written one PutItem each (dynalite has no
    transactions), so the read paths run on dynalite's query engine."""
    for r in readings:
        put = store._put(device_id, r, 10, 99)["Put"]
        put.pop("ReturnValuesOnConditionCheckFailure")
        store.db.put_item(**put)


def test_registry_round_trip_on_dynalite(store):
    store.add_device("a", SECRET, 100)
    store.add_device("b", SECRET, 101)
    store.set_secret("a", SECRET2)
    assert store.get_device("a")["secret"] == SECRET2
    device = store.get_device("b")
    status = {"fw": "0.1.0", "rssi": -61, "dropped": 0}
    store.record_delivery(device, Delivery(200, status, [Reading(4, 1_795_000_000, 21.5, 40.0)]))
    listed = {row["device_id"]: row for row in store.list_devices()}
    assert set(listed) == {"a", "b"} and "secret" not in listed["b"]
    assert (listed["b"]["received"], listed["b"]["max_seq"], listed["b"]["last_status"]) == (1, 4, status)
    store.remove_device("a")
    assert [row["device_id"] for row in store.list_devices()] == ["b"]


def test_listing_devices_follows_pages_past_one_megabyte(store):
    # Each row projects a ~30 KB status into the indexes: 40 rows of one shard need two 1 MB
    # Query pages of that shard's partition.
    big = {"fw": "0.1.0", "note": "x" * 30_000}
    ids = [d for d in (f"dev-{n:03d}" for n in range(1000)) if device_shard(d) == "00"][:40]
    for n, device_id in enumerate(ids):
        store.add_device(device_id, SECRET, n)
        store.record_delivery(store.get_device(device_id), Delivery(n + 1, big, []))
    first = store.db.query(
        TableName=store.devices,
        IndexName="by_id",
        KeyConditionExpression="fleet_shard = :s",
        ExpressionAttributeValues={":s": {"S": "00"}},
    )
    assert "LastEvaluatedKey" in first and len(first["Items"]) < 40, "dynalite pages at 1 MB, as DynamoDB does"
    assert [row["device_id"] for row in store.list_devices()] == ids
    # the fleet page's other order and a filter, through dynalite's checks of the expressions
    newest, cursor = store.page_devices(25, sort="-last_seen")
    more, end = store.page_devices(25, cursor, sort="-last_seen")
    assert [r["device_id"] for r in newest + more] == ids[::-1] and end is None
    stale, _cursor = store.page_devices(10, status="stale")  # last seen in 1970: all of them
    assert [r["device_id"] for r in stale] == ids[:10]


def test_reading_queries_on_dynalite(store):
    readings = [Reading(seq, 1_795_000_000 + seq * 60, 20.0 + seq / 10, 50.0) for seq in range(25)]
    put_as_the_store_does(store, "a", readings)
    assert store.latest_reading("a")["seq"] == 24
    seen, cursor = [], None
    while True:
        page, cursor = store.query_readings("a", limit=10, cursor=cursor)
        seen += [item["seq"] for item in page]
        if cursor is None:
            break
    assert seen == list(range(24, -1, -1))
    window, _ = store.query_readings("a", from_ts=1_795_000_000 + 5 * 60, to_ts=1_795_000_000 + 7 * 60)
    assert [item["seq"] for item in window] == [7, 6, 5]


def test_every_call_a_request_makes_is_one_without_a_25_item_limit(store):
    """A batch call here would need the 25-item split DynamoDB enforces; there is none."""
    calls = []
    store.db.meta.events.register(
        "before-parameter-build.dynamodb", lambda model, params, **_: calls.append((model.name, params))
    )
    store.add_device(DEVICE, SECRET, 1)
    now = int(time.time())
    with pytest.raises(ClientError, match="UnknownOperation"):  # dynalite has no transactions
        ingest.handle(post_event(body_of([reading(seq, ts=now - 30) for seq in range(30)])), store, now, 86400)
    store.list_devices()
    store.latest_reading(DEVICE)
    store.query_readings(DEVICE)
    names = {name for name, _ in calls}
    assert names <= {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "TransactWriteItems"}
    assert not names & {"BatchWriteItem", "BatchGetItem"}
    transactions = [params for name, params in calls if name == "TransactWriteItems"]
    assert transactions and all(len(params["TransactItems"]) <= 100 for params in transactions)


def test_dynalite_enforces_the_batch_limit_and_moto_does_not(dynalite, moto_server):  # noqa: F811
    """Which emulator checks what (DESIGN.md's facts): keep docs/deploy.md honest on upgrades."""
    for url in (dynalite, moto_server.url):
        create_tables(raw_client(url), "limits-r", "limits-d")
        wait_active(raw_client(url), "limits-r", "limits-d")
    many = [{"PutRequest": {"Item": {"device_id": {"S": f"d{n}"}}}} for n in range(26)]
    with pytest.raises(ClientError, match="length less than or equal to 25"):
        raw_client(dynalite).batch_write_item(RequestItems={"limits-d": many})
    raw_client(moto_server.url).batch_write_item(RequestItems={"limits-d": many})
    puts = [
        {"Put": {"TableName": "limits-d", "Item": {"device_id": {"S": f"t{n}"}, "kind": {"S": "device"}}}}
        for n in range(101)
    ]
    with pytest.raises(ClientError, match="ValidationException"):
        raw_client(moto_server.url).transact_write_items(TransactItems=puts)
    raw_client(moto_server.url).transact_write_items(TransactItems=puts[:100])


def test_the_receiver_refuses_dynalite_in_one_line(dynalite, store, tmp_path, capsys):  # noqa: F811
    with pytest.raises(TablesMismatch, match="does not run TransactWriteItems"):
        check_transactions(store.db, store.readings)
    assert check_tables(store.db, store.readings, store.devices) == [
        f"table {store.readings} has no time to live on expires_at: readings will never expire"
    ]
    flags = ["--dynamodb-endpoint", dynalite, "--readings-table", store.readings, "--devices-table", store.devices]
    assert main(["serve", "--store", "dynamodb", "--listen", "0", *flags]) == 1
    err = capsys.readouterr().err
    assert "does not run TransactWriteItems" in err and err.count("\n") == 1
    assert json.dumps(err)  # one readable line, nothing else
