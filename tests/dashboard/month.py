"""A month in a store, as the issue looked at it: a device with a 6-hour outage, a stale one,
one never seen, one whose board drops readings now. Readings are written to the SQLite file
the way ingest leaves them (readings, the hour and day summaries, the device row)."""

import math
from pathlib import Path

from cloud.alerts.admin import add_rule
from cloud.alerts.engine import make_event
from cloud.local.files import STORE_FILE
from cloud.protocol import Reading
from cloud.stores.base import Delivery
from cloud.stores.sqlite import SQLiteStore

DAY = 86400
STEP = 120  # a reading every 2 minutes
OUTAGE_H = 6
# device id: (name, room, hours before now its newest reading is, outage start in days ago)
DEVICES = {
    "greenhouse-01": ("Greenhouse north", "Greenhouse", 0, 3),
    "cellar-02": ("Cellar", "Basement", 30, None),  # silent since yesterday
    "porch-03": ("", "", 0, None),
}
NEVER_SEEN = "attic-04"
WEBHOOK = "https://hooks.example.invalid/dhtlink"  # never called: the delivery below is recorded


def weather(ts: int, offset: float) -> tuple[float, float]:
    day = 2 * math.pi * (ts % DAY) / DAY
    return round(12 + offset + 6 * math.sin(day - 2), 1), round(60 - 15 * math.sin(day - 2) + offset, 1)


def build(data_dir: Path, now: int) -> SQLiteStore:
    data_dir.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(data_dir / STORE_FILE)
    expires = now + 400 * DAY
    for index, (device_id, (name, room, quiet_h, outage_days)) in enumerate(DEVICES.items()):
        store.add_device(device_id, "ab" * 32, now - 31 * DAY)
        store.set_labels(device_id, {"name": name, "room": room})
        end = now - quiet_h * 3600 - 30
        times = range(end - 30 * DAY, end + 1, STEP)
        if outage_days:
            # Mid-hour, so the hour summaries either side of it hold readings whatever the
            # time of day the test runs: the chart shows the outage as OUTAGE_H empty hours.
            start = (now - outage_days * DAY) // 3600 * 3600 + 1800
            times = [ts for ts in times if not start <= ts < start + OUTAGE_H * 3600]
        readings = [Reading(seq, ts, *weather(ts, index * 3)) for seq, ts in enumerate(times)]
        db = store._connect()
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(device_id, r.seq, r.ts, r.t, r.h, r.ts, expires) for r in readings],
        )
        db.execute("COMMIT")
        store.summarise(device_id, [r.ts for r in readings], expires)
        status = {"fw": "0.3.0", "rssi": -58 - 9 * index, "heap_free": 61000, "boot": 40, "sensor_errors": 2}
        status |= {"dropped": 0, "drop_full": 0, "drop_clock": 0, "drop_poison": 0, "unverified": 0}
        first = Delivery(end - 2 * DAY, status, readings[:1])
        store.record_delivery(store.get_device(device_id), first)
        if device_id == "porch-03":  # its board drops readings now: a full spool and no clock
            status = status | {"dropped": 7, "drop_full": 5, "drop_clock": 2, "sensor_errors": 3}
        store.record_delivery(store.get_device(device_id), Delivery(end, status, readings[1:]))
    store.add_device(NEVER_SEEN, "ab" * 32, now - DAY)
    _alerts(store, now)
    return store


def _alerts(store: SQLiteStore, now: int) -> None:
    """One alert open on the stale cellar, one closed on the greenhouse, its webhook's last
    delivery refused."""
    silent, _ = add_rule(store, {"device": "*", "stale": "2h", "name": "Silent device", "email": True})
    warm, _ = add_rule(
        store, {"device": "greenhouse-01", "metric": "t", "above": 17.5, "name": "Greenhouse warm"}, WEBHOOK
    )
    opened = now - 3 * 3600
    store.put_alert_state(
        {
            "rule_id": silent.rule_id,
            "device_id": "cellar-02",
            "status": "open",
            "opened_at": opened,
            "value": 10800,
            "at": opened,
            "version": 1,
        },
        0,
    )
    for kind, at in (("open", now - 9 * 3600), ("close", now - 8 * 3600)):
        event = make_event(warm, "greenhouse-01", kind, at, 17.8, "t above 17.5")
        store.add_alert_event(event, now + 30 * DAY)
        delivery = {"at": at, "event_id": event["event_id"], "ok": False}
        delivery["webhook"] = {"ok": False, "status": 503}
        store.record_alert_delivery(warm.rule_id, event["event_id"], delivery)
    open_event = make_event(silent, "cellar-02", "open", opened, 10800, "no delivery for 2h")
    store.add_alert_event(open_event, now + 30 * DAY)
