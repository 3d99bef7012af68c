"""The store contract, run against SQLite and against DynamoDB (moto)."""

import pytest

from cloud.protocol import Reading
from cloud.stores.base import Delivery, DeviceExists, NoSuchDevice, public_device

SECRET = "ab" * 32


def readings(seqs, ts0=1_795_000_000):
    return [Reading(seq, ts0 + seq * 60, 20.0 + seq / 10, 50.0) for seq in seqs]


def test_registry_round_trip(store):
    store.add_device("a", SECRET, 100)
    assert store.get_device("a")["secret"] == SECRET
    with pytest.raises(DeviceExists):
        store.add_device("a", SECRET, 101)
    store.set_secret("a", "cd" * 32)
    assert store.get_device("a")["secret"] == "cd" * 32
    store.add_device("b", SECRET, 102)
    assert [d["device_id"] for d in store.list_devices()] == ["a", "b"]
    store.remove_device("a")
    assert store.get_device("a") is None
    with pytest.raises(NoSuchDevice):
        store.remove_device("a")
    with pytest.raises(NoSuchDevice):
        store.set_secret("zz", SECRET)


def test_public_device_never_shows_the_secret(store):
    store.add_device("a", SECRET, 100)
    for row in store.list_devices():
        assert SECRET not in str(public_device(row))


def test_a_seq_is_stored_once(store):
    store.add_device("a", SECRET, 1)
    assert len(store.put_readings("a", readings(range(5)), 10, 99)) == 5
    again = store.put_readings("a", readings(range(3, 8)), 11, 99)
    assert [r.seq for r in again] == [5, 6, 7]
    items, cursor = store.query_readings("a", limit=100)
    assert [i["seq"] for i in items] == [7, 6, 5, 4, 3, 2, 1, 0] and cursor is None


def test_distinct_readings_with_the_same_ts_both_stay(store):
    store.add_device("a", SECRET, 1)
    same_ts = [Reading(1, 1_795_000_000, 20.0, 50.0), Reading(2, 1_795_000_000, 21.0, 51.0)]
    assert len(store.put_readings("a", same_ts, 10, 99)) == 2
    assert len(store.query_readings("a")[0]) == 2


def test_more_than_a_transaction_at_once(store):
    store.add_device("a", SECRET, 1)
    assert len(store.put_readings("a", readings(range(130)), 10, 99)) == 130
    assert len(store.put_readings("a", readings(range(120, 140)), 10, 99)) == 10


def test_latest_and_time_range_with_pagination(store):
    store.add_device("a", SECRET, 1)
    store.put_readings("a", readings(range(25)), 10, 99)
    assert store.latest_reading("a")["seq"] == 24
    assert store.latest_reading("nobody") is None
    seen, cursor = [], None
    while True:
        items, cursor = store.query_readings(
            "a", from_ts=1_795_000_000 + 5 * 60, to_ts=1_795_000_000 + 20 * 60, limit=4, cursor=cursor
        )
        seen += [i["seq"] for i in items]
        if not cursor:
            break
    assert seen == list(range(20, 4, -1))
    one = store.query_readings("a", limit=1)[0][0]
    assert one == {"seq": 24, "ts": 1_795_000_000 + 24 * 60, "t": pytest.approx(22.4), "h": 50.0}


def test_delivery_health_counts_gaps(store):
    store.add_device("a", SECRET, 1)
    device = store.get_device("a")
    stored = store.put_readings("a", readings([0, 1, 2, 5, 6]), 10, 99)
    store.record_delivery(device, Delivery(500, {"fw": "0.1.0", "rssi": -60}, stored))
    row = public_device(store.get_device("a"))
    assert row["last_seen"] == 500
    assert row["last_status"] == {"fw": "0.1.0", "rssi": -60}
    assert row["last_reading"]["seq"] == 6
    assert row["health"] == {"first_seq": 0, "max_seq": 6, "received": 5, "missing": 2}
    device = store.get_device("a")
    stored = store.put_readings("a", readings([3, 4]), 11, 99)
    store.record_delivery(device, Delivery(600, None, stored))
    row = public_device(store.get_device("a"))
    assert row["health"]["missing"] == 0 and row["last_status"] == {"fw": "0.1.0", "rssi": -60}
    assert row["last_reading"]["seq"] == 6, "an older late batch does not replace the last reading"
