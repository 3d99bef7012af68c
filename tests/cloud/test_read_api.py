import json
import time

import pytest

from cloud import ingest, read_api
from cloud.protocol import token_sha256
from cloud.stores.sqlite import SQLiteStore
from tests.cloud.helpers import DEVICE, SECRET, body_of, get_event, post_event, reading

NOW = int(time.time())


@pytest.fixture
def db(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.add_device(DEVICE, SECRET, NOW)
    batch = body_of([reading(seq, ts=NOW - 600 + seq * 60) for seq in range(8)], status={"fw": "0.1.0"})
    # the request is signed now, not when the module was collected (a long run made it stale)
    assert ingest.handle(post_event(batch), store, time.time(), 400 * 86400)["statusCode"] == 200
    return store


def call(store, event):
    response = read_api.handle(event, store, token_sha256("read-token"))
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize("token", [None, "wrong", ""])
def test_reads_need_the_token(db, token):
    for path in ("/data/latest", "/data", "/devices"):
        code, answer = call(db, get_event(path, token=token, device_id=DEVICE))
        assert (code, answer["error"]) == (401, "unauthorized")


def test_latest(db):
    code, answer = call(db, get_event("/data/latest", device_id=DEVICE))
    assert code == 200 and answer["seq"] == 7 and answer["ts"] == NOW - 600 + 7 * 60
    assert call(db, get_event("/data/latest", device_id="nobody"))[0] == 404


def test_range_with_cursor(db):
    code, first = call(db, get_event("/data", device_id=DEVICE, limit="3", **{"from": str(NOW - 600 + 60)}))
    assert code == 200 and [i["seq"] for i in first["items"]] == [7, 6, 5]
    _, second = call(
        db,
        get_event("/data", device_id=DEVICE, limit="5", cursor=first["next_cursor"], **{"from": str(NOW - 600 + 60)}),
    )
    assert [i["seq"] for i in second["items"]] == [4, 3, 2, 1] and second["next_cursor"] is None


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"device_id": "bad id"},
        {"device_id": DEVICE, "limit": "0"},
        {"device_id": DEVICE, "limit": "x"},
        {"device_id": DEVICE, "cursor": "!!"},
    ],
)
def test_bad_queries(db, params):
    code, answer = call(db, get_event("/data", **params))
    assert code == 400 and answer["error"] == "bad_query"


def test_devices_show_health_and_never_the_secret(db):
    code, answer = call(db, get_event("/devices"))
    assert code == 200
    (device,) = answer["devices"]
    assert device["last_status"] == {"fw": "0.1.0"} and device["health"]["received"] == 8
    assert SECRET not in json.dumps(answer)
