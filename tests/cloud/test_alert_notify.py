"""Notifiers against a real webhook receiver on loopback, and SNS on moto."""

import io
import json
import time

import boto3
import pytest
from moto import mock_aws

from cloud import observability
from cloud.alerts import admin
from cloud.alerts.engine import make_event
from cloud.alerts.notify import SIGNATURE_HEADER, TIMESTAMP_HEADER, Notifier, payload, signature, verify_signature
from cloud.stores.sqlite import SQLiteStore
from tests.cloud.webhook_receiver import Script, WebhookReceiver

DEVICE = "greenhouse-01"


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "store.sqlite3")
    s.add_device(DEVICE, "00" * 32, 1)
    return s


@pytest.fixture
def logs():
    stream = io.StringIO()
    observability.set_output(stream)
    yield stream
    observability.set_output(None)


def webhook_rule(store, receiver):
    rule, secret = admin.add_rule(store, {"device": DEVICE, "metric": "t", "above": 30}, receiver.url)
    receiver.secret = secret.webhook_secret
    return rule, secret


def event_for(rule, kind="open"):
    return make_event(rule, DEVICE, kind, int(time.time()), 31.5, "t 31.5 °C")


def test_signature_scheme():
    body = b'{"type":"alert.open"}'
    assert (
        signature("k", 1800000000, body)
        == "v1=" + __import__("hmac").new(b"k", b"1800000000." + body, "sha256").hexdigest()
    )
    headers = {TIMESTAMP_HEADER: "1800000000", SIGNATURE_HEADER: signature("k", 1800000000, body)}
    assert verify_signature("k", headers, body, now=1800000000)
    assert not verify_signature("other", headers, body, now=1800000000)
    assert not verify_signature("k", headers, body + b" ", now=1800000000)
    assert not verify_signature("k", headers, body, now=1800000000 + 301), "an old timestamp is a replay"


def test_a_signed_post_the_receiver_verifies(store, logs):
    with WebhookReceiver() as receiver:
        rule, secret = webhook_rule(store, receiver)
        delivery = Notifier(store).deliver(rule, event_for(rule))
    assert delivery["ok"] and delivery["webhook"] == {"ok": True, "attempts": 1, "status": 204}
    (got,) = receiver.received
    assert got.verified, "signed with the rule's secret over timestamp.body"
    assert got.path == "/hooks/dhtlink?team=greenhouse"
    assert got.headers["Content-Type"] == "application/json"
    document = got.document
    assert document["type"] == "alert.open" and document["device_id"] == DEVICE and document["value"] == 31.5
    assert document["rule_id"] == rule.rule_id and "t above 30" in document["rule"]
    assert document["text"] == document["content"] and "OPEN greenhouse-01" in document["text"]
    assert len(got.body) < 1024
    # the delivery is recorded on the rule; the URL and the secret appear in no log line and no record
    assert admin.list_rules(store)[0]["last_delivery"]["webhook"]["status"] == 204
    for text in (logs.getvalue(), json.dumps(admin.list_rules(store))):
        assert receiver.url.split("?")[0] not in text and "hooks/dhtlink" not in text
        assert secret.webhook_secret not in text


def test_500s_are_retried_with_backoff_then_delivered(store, logs):
    waits = []
    with WebhookReceiver(script=Script(statuses=[500, 503])) as receiver:
        rule, _ = webhook_rule(store, receiver)
        delivery = Notifier(store, backoff_s=0.5, sleep=waits.append).deliver(rule, event_for(rule))
    assert delivery["webhook"] == {"ok": True, "attempts": 3, "status": 204}
    assert waits == [0.5, 1.0], "exponential backoff between attempts"
    assert len(receiver.received) == 3 and all(r.verified for r in receiver.received)


def test_a_receiver_that_keeps_failing_is_recorded_as_failed(store, logs):
    with WebhookReceiver(script=Script(then=500)) as receiver:
        rule, _ = webhook_rule(store, receiver)
        delivery = Notifier(store, attempts=3, sleep=lambda s: None).deliver(rule, event_for(rule))
    assert delivery["ok"] is False and delivery["webhook"] == {"ok": False, "attempts": 3, "status": 500}
    assert admin.list_rules(store)[0]["last_delivery"]["webhook"]["status"] == 500


def test_a_4xx_is_final(store, logs):
    with WebhookReceiver(script=Script(then=404)) as receiver:
        rule, _ = webhook_rule(store, receiver)
        delivery = Notifier(store, sleep=lambda s: None).deliver(rule, event_for(rule))
    assert delivery["webhook"] == {"ok": False, "attempts": 1, "status": 404}
    assert len(receiver.received) == 1


def test_a_receiver_that_hangs_times_out(store, logs):
    with WebhookReceiver(script=Script(hang_s=2)) as receiver:
        rule, _ = webhook_rule(store, receiver)
        started = time.monotonic()
        delivery = Notifier(store, attempts=2, timeout_s=0.3, sleep=lambda s: None).deliver(rule, event_for(rule))
        took = time.monotonic() - started
    assert delivery["webhook"] == {"ok": False, "attempts": 2, "status": None, "error": "timeout"}
    assert took < 1.5


def test_nothing_listening(store, logs):
    with WebhookReceiver() as receiver:
        rule, _ = webhook_rule(store, receiver)
    delivery = Notifier(store, attempts=1).deliver(rule, event_for(rule))
    assert delivery["webhook"]["error"] == "connection refused"


def test_email_through_sns_on_moto(store, aws_env, logs):
    rule, _ = admin.add_rule(store, {"device": DEVICE, "stale": "30m", "email": True})
    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        topic = sns.create_topic(Name="dhtlink-alerts")["TopicArn"]
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        event = make_event(rule, DEVICE, "open", int(time.time()), 1800, "no delivery for 30m")
        delivery = Notifier(store, topic_arn=topic, sns=sns).deliver(rule, event)
        (message,) = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"])["Messages"]
    assert delivery["ok"] and delivery["email"]["ok"] and "webhook" not in delivery
    envelope = json.loads(message["Body"])
    assert envelope["Subject"] == f"dhtlink open: {DEVICE} {rule.describe()}"
    assert envelope["Message"].startswith("[dhtlink] OPEN greenhouse-01: no delivery for 30m")
    assert envelope["MessageAttributes"]["rule_id"]["Value"] == rule.rule_id


def test_email_without_a_topic_is_recorded_not_raised(store, logs):
    rule, _ = admin.add_rule(store, {"device": DEVICE, "stale": "30m", "email": True})
    delivery = Notifier(store).deliver(rule, event_for(rule))
    assert delivery["email"] == {"ok": False, "error": "no SNS topic configured (ALERTS_TOPIC_ARN)"}


def test_payload_is_small_json():
    event = {
        "event_id": "1",
        "type": "resolve",
        "rule_id": "abcd1234",
        "name": "",
        "rule": "x: t above 30",
        "device_id": "x",
        "at": 1,
        "value": 28.9,
        "text": "t",
    }
    document = json.loads(payload(event))
    assert document["type"] == "alert.resolve" and set(document) == {
        "type",
        "event_id",
        "rule_id",
        "name",
        "rule",
        "device_id",
        "at",
        "value",
        "text",
        "content",
    }
