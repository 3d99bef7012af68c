"""Keyset paging of readings and devices on both stores, the SQLite query plan, and health bounds."""

import json

import pytest

from cloud import protocol, read_api
from cloud.protocol import Reading, token_sha256
from cloud.stores.base import MAX_SEQ_STEP, Delivery, public_device
from cloud.stores.sqlite import SQLiteStore
from tests.cloud import helpers
from tests.cloud.helpers import get_event

READ_HASH = token_sha256("read-token")

NOW = 1_800_000_000  # fixed: a test never depends on when it was collected or how long the run took


@pytest.fixture(autouse=True)
def _pinned_clock(monkeypatch):
    monkeypatch.setattr(helpers, "clock", lambda: NOW)


def _fill(store, device_id, count, same_ts_every=3):
    # Several readings share a ts, so the cursor's seq part is exercised too.
    readings = [Reading(seq, NOW - 10_000 + seq // same_ts_every, 20.0, 50.0) for seq in range(count)]
    for start in range(0, count, 100):
        store.put_readings(device_id, readings[start : start + 100], NOW, NOW + 86400)
    return readings


def _all_pages(store, device_id, limit, **bounds):
    seen, cursor = [], None
    while True:
        items, cursor = store.query_readings(device_id, limit=limit, cursor=cursor, **bounds)
        seen += items
        if cursor is None:
            return seen


@pytest.mark.parametrize("limit", [1, 7, 50])
def test_pages_cover_a_range_exactly_once_newest_first(store, limit):
    store.add_device("pager", "00" * 32, 1)
    readings = _fill(store, "pager", 60)
    everything = _all_pages(store, "pager", limit)
    expected = sorted(readings, key=lambda r: (r.ts, r.seq), reverse=True)
    assert [(r["ts"], r["seq"]) for r in everything] == [(r.ts, r.seq) for r in expected]
    lo, hi = NOW - 10_000 + 4, NOW - 10_000 + 15
    bounded = _all_pages(store, "pager", limit, from_ts=lo, to_ts=hi)
    assert [(r["ts"], r["seq"]) for r in bounded] == [(r.ts, r.seq) for r in expected if lo <= r.ts <= hi]


def test_devices_come_in_pages(store):
    for n in range(23):
        store.add_device(f"dev-{n:02d}", "00" * 32, 1)
    names, cursor = [], None
    while True:
        code_body = read_api.handle(
            get_event("/devices", limit="5", **({"cursor": cursor} if cursor else {})),
            store,
            READ_HASH,
        )
        answer = json.loads(code_body["body"])
        assert code_body["statusCode"] == 200 and len(answer["devices"]) <= 5
        assert all("secret" not in device for device in answer["devices"])
        names += [device["device_id"] for device in answer["devices"]]
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    assert names == [f"dev-{n:02d}" for n in range(23)]


def _plan(store, cursor=None, to_ts=None):
    """SQLite's plan for the query query_readings runs, captured from the connection."""
    statements = []
    db = store._connect()
    db.set_trace_callback(statements.append)
    try:
        store.query_readings("pager", to_ts=to_ts, limit=10, cursor=cursor)
    finally:
        db.set_trace_callback(None)
    (sql,) = [s for s in statements if s.startswith("SELECT seq, ts, t, h FROM readings")]
    return " ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql))


def test_a_deep_page_seeks_the_index_to_the_cursor(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    _fill(store, "pager", 300)
    _items, cursor = store.query_readings("pager", limit=250)
    deep = _plan(store, cursor=cursor)
    assert "USING INDEX readings_by_time (device_id=? AND (ts,seq)<(?,?))" in deep, deep
    # `to` joins the cursor as one bound: a separate ts < ? would be the planner's pick and walk.
    both = _plan(store, cursor=cursor, to_ts=NOW)
    assert "(device_id=? AND (ts,seq)<(?,?))" in both and "TEMP B-TREE" not in both, both


def test_absurd_seqs_stay_out_of_delivery_health(store):
    store.add_device("odd", "00" * 32, 1)
    device = store.get_device("odd")
    batch = [Reading(s, NOW, 20.0, 50.0) for s in (0, 1, 2, 4)] + [Reading(2**53 - 1, NOW, 20.0, 50.0)]
    stored = store.put_readings("odd", batch, NOW, NOW + 60)
    store.record_delivery(device, Delivery(NOW, None, stored))
    health = public_device(store.get_device("odd"))["health"]
    assert health == {"first_seq": 0, "max_seq": 4, "received": 4, "missing": 1}
    far = [Reading(4 + MAX_SEQ_STEP + 1, NOW, 20.0, 50.0), Reading(5, NOW, 20.0, 50.0)]
    store.record_delivery(store.get_device("odd"), Delivery(NOW, None, store.put_readings("odd", far, NOW, NOW + 60)))
    health = public_device(store.get_device("odd"))["health"]
    assert health == {"first_seq": 0, "max_seq": 5, "received": 5, "missing": 1}  # seq 3
    assert store.query_readings("odd", limit=10)[0][0]["seq"] in (2**53 - 1, 4 + MAX_SEQ_STEP + 1)  # still stored


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.999])
def test_the_clock_window_is_symmetric(fraction):
    now = 1_800_000_000 + fraction
    for offset in (-300, 300):
        protocol.check_freshness(1_800_000_000 + offset, now)
    for offset in (-301, 301):
        with pytest.raises(protocol.Reject) as stale:
            protocol.check_freshness(1_800_000_000 + offset, now)
        assert stale.value.error == "stale_timestamp" and stale.value.extra["server_time"] == 1_800_000_000


def test_json_depth_is_measured_without_recursion():
    assert protocol.json_depth(b'{"a": "[[[{{{", "b": [[1]]}') == 3
    assert protocol.json_depth(b'{"a": "\\"[[[", "b": 1}') == 1
    assert protocol.json_depth(b"[" * 100_000) == 100_000
