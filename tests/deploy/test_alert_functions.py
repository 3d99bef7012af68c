"""The alerts Lambda functions on moto: the stream function over real stream records of
the readings table, the scheduled function, and each role granting exactly the calls made."""

import json
import time

import boto3
import pytest
from moto import mock_aws

from cloud import ingest, settings
from cloud.alerts import admin, scheduled, stream
from cloud.stores.base import SHARDS, Delivery, device_shard
from cloud.stores.dynamodb import create_alerts_table, create_tables
from tests.cloud.helpers import DEVICE, SECRET, body_of, post_event, reading
from tests.deploy.test_deploy import TEMPLATE, function_statements
from tests.deploy.test_iam_matches_code import TABLES, TRANSACT


def statements(function):
    # `!If [HasAlertEmail, statement, AWS::NoValue]`: granted when the stack has an alert e-mail
    return function_statements(function)


def granted_dynamodb(function):
    pairs = set()
    for statement in statements(function):
        resource = statement["Resource"]
        name = resource.get("GetAtt") or resource.get("Sub", "").replace("${", "").replace("}", "")
        for action in statement["Action"]:
            if action.startswith("dynamodb:") and not name.endswith("StreamArn"):
                pairs.add((action.removeprefix("dynamodb:"), name))
    return pairs


def all_actions(function):
    return {a for s in statements(function) for a in s["Action"]}


@pytest.fixture
def stack(monkeypatch):
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client, "readings", "devices")
        create_alerts_table(client, "alerts")
        client.update_table(
            TableName="readings", StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
        )
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="alerts")["TopicArn"]
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        for name, value in (
            ("READINGS_TABLE", "readings"),
            ("DEVICES_TABLE", "devices"),
            ("ALERTS_TABLE", "alerts"),
            ("ALERTS_TOPIC_ARN", topic),
        ):
            monkeypatch.setenv(name, value)
        settings.lambda_store.cache_clear()
        scheduled.lambda_evaluator.cache_clear()
        _settings, store = settings.lambda_store()
        store.add_device(DEVICE, SECRET, 1)
        calls = set()

        def record(model, params, **_):
            if model.name == "TransactWriteItems":
                for item in params["TransactItems"]:
                    ((kind, request),) = item.items()
                    calls.add((TRANSACT[kind], f"{TABLES[request['TableName']]}.Arn"))
            else:
                index = f"/index/{params['IndexName']}" if params.get("IndexName") else ""
                calls.add((model.name, f"{TABLES[params['TableName']]}.Arn{index}"))

        store.db.meta.events.register("before-parameter-build.dynamodb", record)
        yield store, calls, sqs, queue
        settings.lambda_store.cache_clear()
        scheduled.lambda_evaluator.cache_clear()


def stream_event():
    """The readings table's stream records as moto keeps them, shaped as the event source
    mapping hands them over. (moto's DescribeStream over HTTP answers 'not yet implemented',
    so its streams backend is read directly.)"""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    backend = dynamodbstreams_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    (listed,) = backend.list_streams("readings")
    (shard,) = backend.describe_stream(listed["StreamArn"])["Shards"]
    iterator = backend.get_shard_iterator(listed["StreamArn"], shard["ShardId"], "TRIM_HORIZON")
    records = backend.get_records(iterator.arn, 1000)["Records"]
    return {"Records": json.loads(json.dumps(records, default=str))}


def test_stream_function_evaluates_stored_readings_and_mails(stack):
    store, calls, sqs, queue = stack
    admin.add_rule(store, {"device": DEVICE, "metric": "t", "above": 30, "email": True})
    now = int(time.time())
    batch = body_of([reading(s, ts=now - 100 + s, t=35.0 if s == 3 else 20.0) for s in range(5)])
    assert ingest.handle(post_event(batch), store, now, 86400 * 400)["statusCode"] == 200
    event = stream_event()
    assert len(event["Records"]) == 5
    calls.clear()
    assert stream.handler(event, None) == {"transitions": 2, "batchItemFailures": []}
    again = stream.handler(event, None)
    assert again == {"transitions": 0, "batchItemFailures": []}, "a retried batch announces nothing again"
    mails = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert sorted(json.loads(m["Body"])["Subject"].split(":")[0] for m in mails) == ["dhtlink open", "dhtlink resolve"]
    assert calls <= granted_dynamodb("AlertsStreamFunction")
    assert {"sns:Publish", "dynamodb:GetRecords"} <= all_actions("AlertsStreamFunction")


def test_scheduled_function_finds_a_silent_board(stack):
    store, calls, sqs, queue = stack
    admin.add_rule(store, {"device": "*", "stale": "5m", "email": True})
    admin.add_rule(store, {"device": "*", "metric": "dropped", "rising": True, "email": True})
    now = int(time.time())
    answer = ingest.handle(
        post_event(body_of([reading(0, ts=now - 900)]), timestamp=now - 600), store, now - 600, 86400 * 400
    )
    assert answer["statusCode"] == 200
    calls.clear()
    assert scheduled.handler({"source": "aws.events", "detail-type": "Scheduled Event"}, None) == {"transitions": 1}
    assert scheduled.handler({}, None) == {"transitions": 0}
    (mail,) = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert "no delivery for 10m" in json.loads(mail["Body"])["Message"]
    assert calls <= granted_dynamodb("AlertsScheduleFunction")
    assert ("Query", "DevicesTable.Arn/index/by_id") in calls, "devices listed by the index, not a Scan"


def test_each_alert_role_is_exactly_what_the_code_calls(stack):
    """Each function over its whole path (rules, state created and updated, history, the
    webhook secret read, the delivery recorded): the calls made equal the grant."""
    store, calls, _sqs, _queue = stack
    admin.add_rule(store, {"device": DEVICE, "metric": "t", "above": 30}, "http://127.0.0.1:9/x")
    admin.add_rule(store, {"device": "*", "stale": "1m"}, "http://127.0.0.1:9/x")
    then = int(time.time()) - 600  # the board last delivered ten minutes ago
    for seq, t in ((0, 35.0), (1, 20.0)):
        body = body_of([reading(seq, ts=then - 50 + seq, t=t)])
        assert ingest.handle(post_event(body, timestamp=then), store, then, 86400 * 400)["statusCode"] == 200
    event = stream_event()
    scheduled.lambda_evaluator().deliver.__self__.attempts = 1  # nothing listens on port 9: no retries
    calls.clear()
    assert stream.handler(event, None) == {"transitions": 2, "batchItemFailures": []}
    assert calls == granted_dynamodb("AlertsStreamFunction")
    calls.clear()
    assert scheduled.handler({}, None) == {"transitions": 1}
    assert calls == granted_dynamodb("AlertsScheduleFunction")


def test_the_schedule_is_every_five_minutes_and_roles_are_scoped():
    function = TEMPLATE["Resources"]["AlertsScheduleFunction"]["Properties"]
    schedules = list(function["Events"].values())
    assert all(e["Type"] == "Schedule" and e["Properties"]["Schedule"] == "rate(5 minutes)" for e in schedules)
    shards = sorted(json.loads(e["Properties"]["Input"])["shard"] for e in schedules)
    assert shards == list(SHARDS), "every shard of the fleet, each once"
    assert function["Handler"] == "cloud.alerts.scheduled.handler"
    assert TEMPLATE["Resources"]["AlertsStreamFunction"]["Properties"]["Handler"] == "cloud.alerts.stream.handler"
    for name in ("AlertsStreamFunction", "AlertsScheduleFunction"):
        for statement in statements(name):
            assert statement["Resource"] != "*", (name, statement)
    read = function_statements("ReadFunction")
    (alerts,) = [s for s in read if s["Resource"] == {"GetAtt": "AlertsTable.Arn"}]
    leading = alerts["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]
    assert leading == ["rule", "event", *(f"state#{shard}" for shard in SHARDS)]
    assert "secret" not in alerts["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"]


def test_summary_items_on_the_same_stream_are_not_readings(stack):
    """The dashboard's hour and day summaries live in the readings table too: their inserts
    reach the stream beside the readings, and must neither fail the batch nor count."""
    store, _calls, _sqs, _queue = stack
    admin.add_rule(store, {"device": DEVICE, "metric": "t", "above": 30, "email": True})
    now = int(time.time())
    readings = [reading(s, ts=now - 100 + s, t=35.0 if s == 3 else 20.0) for s in range(5)]
    assert ingest.handle(post_event(body_of(readings)), store, now, 86400 * 400)["statusCode"] == 200
    store.summarise(DEVICE, [r["ts"] for r in readings], now + 86400)
    event = stream_event()
    summaries = [r for r in event["Records"] if "ts" not in r["dynamodb"]["NewImage"]]
    assert summaries, "the summaries' inserts are on the stream"
    assert stream.handler(event, None) == {"transitions": 2, "batchItemFailures": []}


def test_a_run_per_shard_covers_each_device_once(stack):
    """The template's 16 scheduled runs, one a shard: together they open the stale alert of
    every silent board exactly once, each run touching its own shard's boards only."""
    store, _calls, _sqs, _queue = stack
    admin.add_rule(store, {"device": "*", "stale": "5m", "email": True})
    silent = [f"quiet-{n:02d}" for n in range(24)]
    for device_id in silent:
        store.add_device(device_id, SECRET, 1)
        store.record_delivery(store.get_device(device_id), Delivery(int(time.time()) - 900, None, []))
    opened = {}
    for shard in SHARDS:
        before = {s["device_id"] for s in store.alert_states()}
        assert scheduled.handler({"shard": shard}, None)["transitions"] == sum(
            1 for d in silent if device_shard(d) == shard
        )
        opened[shard] = {s["device_id"] for s in store.alert_states()} - before
    assert all(device_shard(d) == shard for shard, devices in opened.items() for d in devices)
    assert sorted(d for devices in opened.values() for d in devices) == silent
    assert scheduled.handler({}, None) == {"transitions": 0}, "all of them already open"
    with pytest.raises(ValueError, match="shard must be one of"):
        scheduled.handler({"shard": "16"}, None)
