"""The read routes the dashboard needs: GET /devices sorted, filtered and one by id, and a
device's readings as one CSV answer."""

import base64
import csv
import gzip
import io
import json
import time

import pytest

from cloud import ingest, read_api
from cloud.protocol import token_sha256
from cloud.stores.sqlite import SQLiteStore
from tests.cloud.helpers import DEVICE, SECRET, body_of, get_event, post_event, reading


@pytest.fixture
def now():
    # Taken when the test runs, not at collection: the reads below use the real clock
    # (the CSV's default end, staleness), and a loaded run can start a test minutes later.
    return int(time.time())


@pytest.fixture
def db(tmp_path, now):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.add_device(DEVICE, SECRET, now)
    store.add_device("never-seen", SECRET, now)
    for start in range(0, 2500, 100):  # 2,500 readings, more than two store pages
        batch = body_of([reading(seq, ts=now - 3000 + seq) for seq in range(start, start + 100)], status={"fw": "1"})
        answer = ingest.handle(post_event(batch, timestamp=now), store, now, 400 * 86400)
        assert answer["statusCode"] == 200
    return store


def call(store, event):
    response = read_api.handle(event, store, token_sha256("read-token"))
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = gzip.decompress(base64.b64decode(body)).decode()
    return response, body


def test_devices_sorted_and_filtered_on_the_server(db):
    answer, body = call(db, get_event("/devices", sort="last_seen"))
    assert [d["device_id"] for d in json.loads(body)["devices"]] == ["never-seen", DEVICE]
    answer, body = call(db, get_event("/devices", sort="-last_seen", status="stale"))
    (stale,) = json.loads(body)["devices"]
    assert stale["device_id"] == "never-seen" and stale["stale"] and stale["problem"]
    for bad, says in (
        ({"sort": "rssi"}, "sort must be one of id, last_seen, -last_seen"),
        ({"status": "broken"}, "status must be one of all, stale, problems"),
        ({"limit": "101"}, "limit must be a whole number from 1 to 100"),
        ({"device_id": DEVICE, "sort": "id"}, "send it alone"),
    ):
        answer, body = call(db, get_event("/devices", **bad))
        assert answer["statusCode"] == 400 and says in json.loads(body)["message"], bad


def test_one_device_by_id_or_none(db):
    answer, body = call(db, get_event("/devices", device_id=DEVICE))
    (device,) = json.loads(body)["devices"]
    assert device["device_id"] == DEVICE and "secret" not in device and device["last_status"] == {"fw": "1"}
    assert json.loads(call(db, get_event("/devices", device_id="nobody"))[1]) == {"devices": [], "next_cursor": None}


def test_csv_is_one_answer_oldest_first(db, now):
    event = get_event("/data/csv", device_id=DEVICE, **{"from": str(now - 2900), "to": str(now)})
    event["headers"]["accept-encoding"] = "gzip, deflate"
    answer, body = call(db, event)
    assert answer["statusCode"] == 200 and answer["headers"]["content-encoding"] == "gzip"
    assert answer["headers"]["content-disposition"].startswith(f'attachment; filename="{DEVICE}_')
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [int(r["seq"]) for r in rows] == list(range(100, 2500))
    first = rows[0]
    assert first["time_utc"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 2900))
    assert int(first["unix_s"]) == now - 2900
    plain, text = call(db, get_event("/data/csv", device_id=DEVICE))
    assert "content-encoding" not in plain["headers"] and text.count("\n") == 2501


def test_csv_refuses_a_range_too_big_for_one_answer(db, monkeypatch):
    monkeypatch.setattr(read_api, "CSV_MAX_ROWS", 1500)
    answer, body = call(db, get_event("/data/csv", device_id=DEVICE))
    assert answer["statusCode"] == 413 and "download it in parts" in json.loads(body)["message"]
    answer, body = call(db, get_event("/data/csv", device_id=DEVICE, **{"from": "9", "to": "3"}))
    assert answer["statusCode"] == 400
