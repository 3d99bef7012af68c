"""The store contract, run against SQLite and against DynamoDB (moto)."""

import pytest

from cloud.protocol import MAX_READINGS, Reading
from cloud.stores.base import Delivery, DeviceExists, NoSuchDevice, SeqConflict, public_device

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


def test_a_full_request_at_once_and_no_more(store):
    store.add_device("a", SECRET, 1)
    assert len(store.put_readings("a", readings(range(MAX_READINGS)), 10, 99)) == MAX_READINGS
    assert len(store.put_readings("a", readings(range(90, 90 + MAX_READINGS)), 10, 99)) == 90
    with pytest.raises(ValueError, match="at most 100"):
        store.put_readings("a", readings(range(500, 501 + MAX_READINGS)), 10, 99)
    assert len(store.query_readings("a", limit=1000)[0]) == 190


def test_other_content_under_a_stored_seq_is_a_conflict_and_stores_nothing(store):
    store.add_device("a", SECRET, 1)
    store.put_readings("a", readings(range(10)), 10, 99)
    before = store.query_readings("a", limit=100)[0]
    restarted = [Reading(seq, 1_796_000_000 + seq, 19.0, 60.0) for seq in range(3)]  # a board counting from 0 again
    with pytest.raises(SeqConflict) as raised:
        store.put_readings("a", [*readings([10, 11]), *restarted], 11, 99)
    assert (raised.value.seqs, raised.value.count, raised.value.next_seq) == ([0, 1, 2], 3, 10)
    assert store.query_readings("a", limit=100)[0] == before, "new seqs 10 and 11 were not stored either"
    assert [r.seq for r in store.put_readings("a", readings([10, 11]), 12, 99)] == [10, 11]


@pytest.mark.parametrize(
    ("change", "conflict"),
    [
        ({"ts": 1}, True),
        ({"t": 0.1}, True),
        ({"h": -0.1}, True),
        ({"t": 0.04}, False),  # below the sensors' 0.1 resolution: a float's round trip, not other content
        ({"h": 0.03}, False),
    ],
)
def test_what_counts_as_other_content(store, change, conflict):
    store.add_device("a", SECRET, 1)
    first = Reading(5, 1_795_000_000, 21.4, 45.2)
    store.put_readings("a", [first], 10, 99)
    again = Reading(5, first.ts + change.get("ts", 0), first.t + change.get("t", 0), first.h + change.get("h", 0))
    if conflict:
        with pytest.raises(SeqConflict):
            store.put_readings("a", [again], 11, 99)
    else:
        assert store.put_readings("a", [again], 11, 99) == []
    assert store.query_readings("a")[0] == [{"seq": 5, "ts": 1_795_000_000, "t": 21.4, "h": 45.2}]


def test_a_conflict_names_at_most_ten_seqs_and_the_next_free_one(store):
    store.add_device("a", SECRET, 1)
    store.put_readings("a", readings(range(0, 100)), 10, 99)
    store.put_readings("a", readings([250]), 10, 99)  # a gap: next_seq is past the highest, not the count
    moved = [Reading(r.seq, r.ts + 1, r.t, r.h) for r in readings(range(30, 45))]
    with pytest.raises(SeqConflict) as raised:
        store.put_readings("a", moved, 11, 99)
    assert raised.value.seqs == list(range(30, 40)) and raised.value.count == 15
    assert raised.value.next_seq == 251


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


@pytest.mark.parametrize("size", [20, MAX_READINGS])
def test_racing_requests_of_one_batch_count_it_once(store, size):
    """A board re-sends a batch while its first request is still storing it: both requests
    read the device row before either counted."""
    store.add_device("a", SECRET, 1)
    batch = readings(range(size))
    both_read = store.get_device("a")
    assert store.store_batch(both_read, batch, None, 500, 10**10) == batch
    assert store.store_batch(both_read, batch, None, 501, 10**10) == []
    row = public_device(store.get_device("a"))
    assert row["health"] == {"first_seq": 0, "max_seq": size - 1, "received": size, "missing": 0}
    assert row["last_seen"] == 501


@pytest.mark.parametrize("size", [20, MAX_READINGS])  # in one transaction, and the full batch after it
def test_store_batch_counts_each_reading_once(store, size):
    store.add_device("a", SECRET, 1)
    batch = readings(range(size))
    assert store.store_batch(store.get_device("a"), batch, {"fw": "1"}, 500, 10**10) == batch
    assert store.store_batch(store.get_device("a"), batch, None, 600, 10**10) == []  # the re-send
    row = public_device(store.get_device("a"))
    assert row["health"] == {"first_seq": 0, "max_seq": size - 1, "received": size, "missing": 0}
    assert (row["last_seen"], row["last_status"], row["last_reading"]["seq"]) == (600, {"fw": "1"}, size - 1)
    before = store.get_device("a")
    with pytest.raises(SeqConflict):
        store.store_batch(before, [Reading(0, 1, 30.0, 50.0), *readings([size])], None, 700, 10**10)
    assert store.get_device("a") == before, "a refused batch leaves the row as it was"
