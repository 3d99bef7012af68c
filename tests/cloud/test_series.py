"""Chart series: hour/day summaries kept by ingest, and GET /data/series on every store."""

import json
import time
from statistics import mean

import pytest

from cloud import ingest, read_api, rollups, series
from cloud.protocol import Reading, token_sha256
from cloud.stores.sqlite import SQLiteStore
from tests.cloud.helpers import DEVICE, SECRET, body_of, get_event, post_event, reading

DAY0 = 1_795_046_400  # a UTC midnight
TOKEN = "read-token"
TOKEN_HASH = token_sha256(TOKEN)


def minutely(start, count, first_seq=0, skip=()):
    """One reading a minute; t and h vary so means, minima and maxima differ."""
    return [
        Reading(first_seq + i, start + 60 * i, round(20 + (i % 17) / 10, 1), round(40 + (i % 23) / 10, 1))
        for i in range(count)
        if i not in skip
    ]


def put_all(store, readings):
    """As ingest stores them: at most 100 a request."""
    for first in range(0, len(readings), 100):
        store.put_readings(DEVICE, readings[first : first + 100], 1, 2**31)


class CountingStore:
    """The store, counting the items its reads return (readings and summaries)."""

    def __init__(self, store):
        self.store = store
        self.items_read = 0

    def query_readings(self, *args, **kwargs):
        items, cursor = self.store.query_readings(*args, **kwargs)
        self.items_read += len(items)
        return items, cursor

    def query_rollups(self, *args, **kwargs):
        items = self.store.query_rollups(*args, **kwargs)
        self.items_read += len(items)
        return items


def test_slots_hold_exact_sums_minima_and_maxima():
    hour = [{"ts": DAY0 + 60 * i, "t": 20.1 + i / 10, "h": 50.0 - i / 10} for i in range(10)]
    slots = rollups.hour_slots(DAY0, hour)
    assert slots[0] == [
        5,
        pytest.approx(101.5),
        20.1,
        pytest.approx(20.5),
        pytest.approx(249.0),
        pytest.approx(49.6),
        50.0,
    ]
    assert slots[1][0] == 5 and slots[2:] == [None] * 10
    assert rollups.merge(slots)[0] == 10 and rollups.merge([None, None]) is None
    assert series.pick_step(30 * 86400, 800) == 3600
    assert series.pick_step(86400, 800) == 300
    assert series.pick_step(7 * 86400, 800) == 900
    assert series.pick_step(3000 * 86400, 800) == 4 * 86400


def test_summaries_match_the_readings_and_a_resend_repairs_them(store):
    store.add_device(DEVICE, SECRET, 1)
    batch = minutely(DAY0 + 3000, 180)  # 50 min into the day, across four hours
    put_all(store, batch)
    store.summarise(DEVICE, [r.ts for r in batch[:10]], 2**31)  # only the first hour summarised
    hours = dict(store.query_rollups(DEVICE, rollups.HOUR_LEVEL, DAY0, DAY0 + 86399))
    assert list(hours) == [DAY0]
    store.summarise(DEVICE, [r.ts for r in batch], 2**31)  # the re-sent batch: all duplicates, summaries repaired
    hours = dict(store.query_rollups(DEVICE, rollups.HOUR_LEVEL, DAY0, DAY0 + 86399))
    assert sorted(hours) == [DAY0, DAY0 + 3600, DAY0 + 7200, DAY0 + 10800]
    for start, slots in hours.items():
        inside = [r for r in batch if start <= r.ts < start + 3600]
        assert rollups.count(slots) == len(inside)
        assert slots == rollups.hour_slots(start, [r._asdict() for r in inside])
    ((day_start, day),) = store.query_rollups(DEVICE, rollups.DAY_LEVEL, DAY0, DAY0)
    assert day_start == DAY0 and rollups.count(day) == 180
    assert day[1][2] == min(r.t for r in batch if DAY0 + 3600 <= r.ts < DAY0 + 7200)
    store.summarise(DEVICE, [r.ts for r in batch], 2**31)
    assert dict(store.query_rollups(DEVICE, rollups.HOUR_LEVEL, DAY0, DAY0 + 86399)) == hours


def test_a_short_range_is_the_readings_themselves_with_gaps(store):
    store.add_device(DEVICE, SECRET, 1)
    batch = minutely(DAY0, 120, skip=set(range(50, 60)))
    put_all(store, batch)
    store.summarise(DEVICE, [r.ts for r in batch], 2**31)
    out = series.series(store, DEVICE, DAY0, DAY0 + 7199, 800)
    assert out["step"] == 0
    real = [i for i, ts in enumerate(out["ts"]) if out["t"][i] is not None]
    assert [out["ts"][i] for i in real] == [r.ts for r in batch]
    assert [out["t"][i] for i in real] == [r.t for r in batch]
    assert [out["h"][i] for i in real] == [r.h for r in batch]
    gaps = [ts for ts, t in zip(out["ts"], out["t"], strict=True) if t is None]
    assert len(gaps) == 1 and DAY0 + 49 * 60 < gaps[0] < DAY0 + 60 * 60
    one_missing = series.series(store, DEVICE, DAY0, DAY0 + 40 * 60, 800)
    assert None not in one_missing["t"]


def test_thirty_days_of_minute_data_read_few_items_on_sqlite(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.add_device(DEVICE, SECRET, 1)
    outage = set(range(10 * 1440, 10 * 1440 + 360))  # six hours without readings on day 10
    batch = minutely(DAY0, 30 * 1440, skip=outage)
    put_all(store, batch)
    store.summarise(DEVICE, [r.ts for r in batch], 2**31)
    counting = CountingStore(store)
    out = series.series(counting, DEVICE, DAY0, DAY0 + 30 * 86400 - 1, 1000)
    assert counting.items_read <= 1000 and len(out["ts"]) <= 1000
    assert counting.items_read == 30 and out["step"] == 3600
    points = {ts: i for i, ts in enumerate(out["ts"]) if out["n"][i] is not None}
    assert len(points) == 30 * 24 - 6
    for hour in (DAY0, DAY0 + 5 * 86400 + 7 * 3600, DAY0 + 29 * 86400 + 23 * 3600):
        inside = [r for r in batch if hour <= r.ts < hour + 3600]
        i = points[hour]
        assert out["n"][i] == 60
        assert out["t"][i] == pytest.approx(mean(r.t for r in inside), abs=0.005)
        assert out["h_min"][i] == min(r.h for r in inside) and out["t_max"][i] == max(r.t for r in inside)
    gaps = [ts for ts, n in zip(out["ts"], out["n"], strict=True) if n is None]
    assert len(gaps) == 1 and DAY0 + 10 * 86400 < gaps[0] < DAY0 + 10 * 86400 + 6 * 3600
    day = series.series(counting, DEVICE, DAY0 + 86400, DAY0 + 2 * 86400 - 1, 1000)
    assert day["step"] == 300 and len(day["ts"]) == 288


@pytest.mark.slow
def test_thirty_days_read_thirty_items_from_dynamodb(aws_env):
    """On moto, counting the items DynamoDB returns. moto scans the whole table for every
    Query, so 30 days at one reading a minute would take an hour to summarise here: the
    month has one reading every 6 hours and six hours at one a minute; what a chart reads
    depends on the range only (one day item per day), which this counts. The SQLite test
    above has the full month at one a minute."""
    import boto3
    from moto import mock_aws

    from cloud.stores.dynamodb import DynamoDBStore, create_tables

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client, "readings", "devices")
        store = DynamoDBStore("readings", "devices", client)
        store.add_device(DEVICE, SECRET, 1)
        dense_day = DAY0 + 12 * 86400
        sparse = [Reading(i, DAY0 + 6 * 3600 * i + 1800, 20.0 + i % 5, 50.0) for i in range(120) if i // 4 != 12]
        dense = minutely(dense_day, 360, first_seq=1000)
        for batch in (sparse, dense):
            put_all(store, batch)
            store.summarise(DEVICE, [r.ts for r in batch], 2**31)
        read = []
        client.meta.events.register("after-call.dynamodb.Query", lambda parsed, **_: read.append(parsed["Count"]))
        out = series.series(store, DEVICE, DAY0, DAY0 + 30 * 86400 - 1, 1000)
        assert sum(read) == 30 and len(read) == 1, "one Query, one item per day"
        assert out["step"] == 3600 and len(out["ts"]) <= 1000
        hours = {ts: n for ts, n in zip(out["ts"], out["n"], strict=True) if n}
        assert [hours[dense_day + 3600 * i] for i in range(6)] == [60] * 6
        assert sum(hours.values()) == len(sparse) + len(dense)
        read.clear()
        day = series.series(store, DEVICE, dense_day, dense_day + 86399, 1000)
        assert sum(read) == 6 and day["step"] == 300 and len(day["ts"]) == 72


def test_the_stream_function_summarises_what_ingest_stored(aws_env):
    """DynamoDB: ingest makes its 3 calls and no more; the readings table's stream brings the
    summaries up to date through cloud/summaries.py."""
    import boto3
    from moto import mock_aws

    from cloud import summaries
    from cloud.stores.dynamodb import DynamoDBStore, create_tables

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client, "readings", "devices")
        store = DynamoDBStore("readings", "devices", client)
        store.add_device(DEVICE, SECRET, 1)
        now = int(time.time())
        sent = [reading(seq, ts=now - 3000 + 60 * seq) for seq in range(40)]
        calls = []
        client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
        assert ingest.handle(post_event(body_of(sent)), store, now, 400 * 86400)["statusCode"] == 200
        assert calls == ["GetItem", "TransactWriteItems"]  # the device row rides in the transaction
        assert store.query_rollups(DEVICE, rollups.HOUR_LEVEL, 0, now) == [], "not on the request path"
        # What the stream hands the function (NEW_IMAGE of each insert). moto's stream API is
        # not implemented for this table kind, so the images come from the table itself.
        items = client.scan(TableName="readings")["Items"]
        event = {"Records": [{"eventName": "INSERT", "dynamodb": {"NewImage": item}} for item in items]}
        event["Records"].append({"eventName": "REMOVE", "dynamodb": {"NewImage": items[0]}})
        assert summaries.handle(event, store) == {"batchItemFailures": []}
        hours = store.query_rollups(DEVICE, rollups.HOUR_LEVEL, 0, now)
        assert sum(rollups.count(slots) for _, slots in hours) == 40
        assert summaries.handle(event, store) == {"batchItemFailures": []}, "a redelivered batch changes nothing"
        assert store.query_rollups(DEVICE, rollups.HOUR_LEVEL, 0, now) == hours
        out = series.series(store, DEVICE, now - 3600, now, 800)
        assert out["ts"] == [r["ts"] for r in sent]


def test_series_route_through_ingest_and_bad_queries(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.add_device(DEVICE, SECRET, 1)
    now = int(time.time())
    sent = [reading(seq, ts=now - 3000 + 60 * seq, t=20 + seq / 10) for seq in range(40)]
    assert ingest.handle(post_event(body_of(sent)), store, now, 400 * 86400)["statusCode"] == 200
    hours = store.query_rollups(DEVICE, rollups.HOUR_LEVEL, now - 7200, now)
    assert sum(rollups.count(slots) for _, slots in hours) == 40, "ingest keeps the summaries up to date"
    answer = read_api.handle(
        get_event("/data/series", TOKEN, device_id=DEVICE, **{"from": str(now - 3600)}), store, TOKEN_HASH
    )
    assert answer["statusCode"] == 200
    body = json.loads(answer["body"])
    assert body["ts"] == [r["ts"] for r in sent] and body["t"] == [r["t"] for r in sent] and body["step"] == 0
    day = json.loads(read_api.handle(get_event("/data/series", TOKEN, device_id=DEVICE), store, TOKEN_HASH)["body"])
    assert day["to"] - day["from"] == 86400 and day["step"] == 300 and sum(day["n"]) == 40
    for params, words in (
        ({}, "device_id"),
        ({"device_id": DEVICE, "from": "x"}, "from"),
        ({"device_id": DEVICE, "from": "20", "to": "10"}, "before"),
        ({"device_id": DEVICE, "points": "5000"}, "points"),
        ({"device_id": DEVICE, "to": "²"}, "to"),
    ):
        bad = read_api.handle(get_event("/data/series", TOKEN, **params), store, TOKEN_HASH)
        assert bad["statusCode"] == 400 and words in json.loads(bad["body"])["message"]
    assert read_api.handle(get_event("/data/series", "wrong", device_id=DEVICE), store, TOKEN_HASH)["statusCode"] == 401
