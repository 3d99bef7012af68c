"""The template's IAM statements grant exactly the DynamoDB calls the handlers make.

Each handler runs against moto on every route and path it has (new batch, re-sent batch,
seq conflict, rejected request; latest, range with a cursor, devices); a botocore hook records each
call as (IAM action, table or index). That set must equal what the template grants the
function: nothing the code needs is missing (AccessDenied in AWS), nothing granted is unused.
"""

import json
import time

import boto3
import pytest
from moto import mock_aws

from cloud import ingest, read_api, summaries
from cloud.protocol import token_sha256
from cloud.stores.dynamodb import DynamoDBStore, create_alerts_table, create_tables
from tests.cloud.helpers import DEVICE, SECRET, body_of, get_event, post_event, reading
from tests.deploy.test_deploy import function_statements

READ_HASH = token_sha256("read-token")

TABLES = {"readings": "ReadingsTable", "devices": "DevicesTable", "alerts": "AlertsTable"}
TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}


def granted(function):
    """(action, resource) pairs, the resource written as the template names it."""
    pairs = set()
    for statement in function_statements(function, logs=False):
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for resource in resources:
            name = resource.get("GetAtt") or resource["Sub"].replace("${", "").replace("}", "")
            if name.endswith("StreamArn"):
                continue  # what Lambda's event source mapping reads for the function, not its code
            tables = [action for action in statement["Action"] if action.startswith("dynamodb:")]
            pairs |= {(action.removeprefix("dynamodb:"), name) for action in tables}
    return pairs


def resource(table, index=None):
    return f"{TABLES[table]}.Arn" + (f"/index/{index}" if index else "")


@pytest.fixture
def recorded(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client, "readings", "devices")
        create_alerts_table(client, "alerts")
        store = DynamoDBStore("readings", "devices", client, alerts_table="alerts")
        store.add_device(DEVICE, SECRET, 1)
        calls = set()

        def record(model, params, **_):
            if model.name == "TransactWriteItems":
                for item in params["TransactItems"]:
                    ((kind, request),) = item.items()
                    calls.add((TRANSACT[kind], resource(request["TableName"])))
            else:
                calls.add((model.name, resource(params["TableName"], params.get("IndexName"))))

        client.meta.events.register("before-parameter-build.dynamodb", record)
        yield store, calls


def test_ingest_is_granted_exactly_what_it_calls(recorded):
    store, calls = recorded
    now = int(time.time())
    batch = body_of([reading(seq, ts=now - 100 + seq) for seq in range(20)], status={"fw": "0.1.0"})
    conflict = body_of([reading(seq, ts=now - 10, t=30.0) for seq in range(3)])
    statuses = [
        ingest.handle(event, store, now, 86400 * 400)["statusCode"]
        for event in (post_event(batch), post_event(batch), post_event(conflict), post_event(batch, secret="00" * 32))
    ]
    assert statuses == [200, 200, 409, 401]
    assert calls == granted("IngestFunction")


def test_read_is_granted_exactly_what_it_calls(recorded):
    store, calls = recorded
    now = int(time.time())
    ingest.handle(post_event(body_of([reading(s, ts=now - 100 + s) for s in range(5)])), store, now, 86400 * 400)
    calls.clear()
    assert read_api.handle(get_event("/data/latest", device_id=DEVICE), store, READ_HASH)["statusCode"] == 200
    page = read_api.handle(get_event("/data", device_id=DEVICE, limit="2"), store, READ_HASH)
    cursor = json.loads(page["body"])["next_cursor"]
    assert cursor
    more = read_api.handle(get_event("/data", device_id=DEVICE, limit="2", cursor=cursor), store, READ_HASH)
    assert more["statusCode"] == 200
    assert read_api.handle(get_event("/devices"), store, READ_HASH)["statusCode"] == 200
    # GET /devices?sort=last_seen (the fleet page's order, issue 26) reads the other index.
    assert store.page_devices(10, sort="-last_seen")[0]
    problems = read_api.handle(get_event("/devices", sort="last_seen", status="problems"), store, READ_HASH)
    assert problems["statusCode"] == 200
    one = read_api.handle(get_event("/devices", device_id=DEVICE), store, READ_HASH)  # find_device: by_id
    assert one["statusCode"] == 200 and json.loads(one["body"])["devices"][0]["device_id"] == DEVICE
    csv = read_api.handle(get_event("/data/csv", device_id=DEVICE), store, READ_HASH)
    assert csv["statusCode"] == 200
    assert read_api.handle(get_event("/alerts"), store, READ_HASH)["statusCode"] == 200
    series = read_api.handle(get_event("/data/series", device_id=DEVICE), store, READ_HASH)
    assert series["statusCode"] == 200
    assert calls == granted("ReadFunction")


def test_the_summary_function_is_granted_exactly_what_it_calls(recorded):
    store, calls = recorded
    now = int(time.time())
    ingest.handle(post_event(body_of([reading(s, ts=now - 100 + s) for s in range(5)])), store, now, 86400 * 400)
    calls.clear()
    image = {"device_id": {"S": DEVICE}, "seq": {"N": "1"}, "ts": {"N": str(now - 99)}, "expires_at": {"N": "9"}}
    summaries.handle({"Records": [{"eventName": "INSERT", "dynamodb": {"NewImage": image}}]}, store)
    assert calls == granted("SummaryFunction")
