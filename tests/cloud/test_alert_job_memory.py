"""The scheduled alert job's memory does not grow with the fleet: it walks devices and states
a page at a time (bench/fleet_jobs.py measures it at 10k and 100k devices; these are the
small versions). Before issue 24 it held every device and every state at once."""

import gc
import json
import tracemalloc

import pytest

from cloud.alerts import admin
from cloud.alerts.engine import Evaluator
from cloud.stores import dynamodb, sqlite
from cloud.stores.base import Delivery, device_shard
from cloud.stores.dynamodb import DynamoDBStore, create_alerts_table, create_tables
from cloud.stores.sqlite import SQLiteStore
from tests.cloud.servers import PATIENT_S, moto_server  # noqa: F401 - the fixture

NOW = 1_790_000_000
SECRET = "ab" * 32


def rules(store):
    admin.add_rule(store, {"device": "*", "stale": "30m", "email": True})
    admin.add_rule(store, {"device": "*", "metric": "dropped", "rising": True, "email": True})


def peak_of_a_run(store, shard=None, runs=1):
    """Heap peak of a warm run (the first one wrote every device's rising-rule state), the
    least of `runs`: what a run holds is in each of them, while garbage the collector has not
    reached yet, or a call botocore retried, only ever adds to one."""
    evaluator = Evaluator(store, lambda rule, event: None)
    evaluator.on_schedule(NOW, shard)
    peaks = []
    for _ in range(runs):
        gc.collect()
        tracemalloc.start()
        try:
            evaluator.on_schedule(NOW + 300, shard)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    return min(peaks)


def sqlite_fleet(path, devices):
    store = SQLiteStore(path)
    status = json.dumps({"fw": "0.3.0", "rssi": -60, "heap_free": 51234, "sensor_errors": 0, "dropped": 1})
    db = store._connect()
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO devices (device_id, secret, created_at, last_seen, last_status, received) "
        "VALUES (?, ?, 1, ?, ?, 0)",
        [(f"board-{n:06d}", SECRET, NOW - (3600 if n % 50 == 0 else 60), status) for n in range(devices)],
    )
    db.execute("COMMIT")
    rules(store)
    return store


def test_sqlite_peak_is_flat_from_1k_to_6k_devices(tmp_path):
    small = peak_of_a_run(sqlite_fleet(tmp_path / "small.sqlite3", 1_000))
    large = peak_of_a_run(sqlite_fleet(tmp_path / "large.sqlite3", 6_000))
    assert large < small * 1.3, f"peak {small} B at 1k devices, {large} B at 6k: grows with the fleet"
    assert sqlite.FLEET_PAGE < 1_000, "more than one page at each size"


def test_dynamodb_shard_run_peak_is_flat_with_the_fleet(moto_server, monkeypatch):  # noqa: F811 - the fixture
    """One shard's run (as the template schedules it), pages of 3 rows: 3 and 36 devices in
    the shard hold the same pages. moto answers from its own process (in-process moto's
    Query lists the whole table, which the heap would count)."""
    monkeypatch.setattr(dynamodb, "FLEET_PAGE", 3)
    peaks = []
    client = moto_server.client(read_timeout=PATIENT_S)
    for size in (3, 36):
        create_tables(client, f"r{size}", f"d{size}")
        create_alerts_table(client, f"a{size}")
        store = DynamoDBStore(f"r{size}", f"d{size}", client, alerts_table=f"a{size}")
        in_shard = [d for d in (f"board-{n:05d}" for n in range(2000)) if device_shard(d) == "00"][:size]
        for device_id in in_shard:
            store.add_device(device_id, SECRET, 1)
            status = {"dropped": 1, "sensor_errors": 0}
            store.record_delivery(store.get_device(device_id), Delivery(NOW - 60, status, []))
        rules(store)
        peaks.append(peak_of_a_run(store, "00", runs=3))
        states = store.alert_states()
        assert len(states) == size and all(device_shard(s["device_id"]) == "00" for s in states)
    small, large = peaks
    # the same pages at both sizes (one run alone varied up to 2x, with garbage); listing the fleet: 12x
    assert large < small * 3, f"peak {small} B at 3 devices, {large} B at 36: grows with the fleet"


@pytest.mark.parametrize("shard", [None, "00"])
def test_a_run_walks_the_fleet_without_holding_it(tmp_path, shard):
    """The runs read devices and states as iterators: neither is listed whole."""
    store = sqlite_fleet(tmp_path / "s.sqlite3", 50)
    store.list_devices = lambda: pytest.fail("the whole registry listed")
    store.alert_states = lambda device_id=None: pytest.fail("every state listed")
    Evaluator(store, lambda rule, event: None).on_schedule(NOW, shard)
