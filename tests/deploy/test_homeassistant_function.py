"""The deployed stack's Home Assistant function on moto: real ingest into DynamoDB, the
readings stream's records, retained publishes to IoT Core; and the optional block of the
template (off by default, the SAM transform clean with it on)."""

import json
import re
import time

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from samtranslator.public.translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

from cloud import homeassistant as ha
from cloud import ingest
from cloud.homeassistant import iot
from host_tools.cli import deploy
from tests.cloud.helpers import DEVICE, body_of, post_event, reading
from tests.deploy.test_alert_functions import stack, stream_event  # noqa: F401 - the fixture
from tests.deploy.test_deploy import TEMPLATE, function_statements


@pytest.fixture
def published(stack, monkeypatch):  # noqa: F811 - the fixture imported above
    """(topic, retain, qos, payload) of every publish the function makes, and the store.

    moto routes only data(-ats).iot.REGION hosts to its IoT data plane, not the account's
    own endpoint the function looks up (which moto answers as the control plane), so the
    publishes go to boto3's default host here; the look-up is checked on its own below."""
    from moto.iotdata.models import iotdata_backends

    store, calls, _sqs, _queue = stack
    iot.iot_data_client.cache_clear()
    sent = []
    client = boto3.client("iot-data", region_name="us-east-1")
    monkeypatch.setattr(iot, "iot_data_client", lambda: client)
    client.meta.events.register(
        "before-parameter-build.iot-data.Publish",
        lambda params, **_: sent.append((params["topic"], params["retain"], params["qos"], params["payload"])),
    )
    yield store, calls, sent, iotdata_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]


def test_the_client_publishes_to_the_accounts_own_data_endpoint(stack):  # noqa: F811
    iot.iot_data_client.cache_clear()
    # moto makes up a new identifier each time; AWS answers one per account.
    url = iot.iot_data_client().meta.endpoint_url
    assert re.fullmatch(r"https://[a-z0-9]+-ats\.iot\.us-east-1\.amazonaws\.com", url), url
    iot.iot_data_client.cache_clear()


def ingest_batch(store, readings):
    answer = ingest.handle(post_event(body_of(readings)), store, time.time(), 86400 * 400)
    assert answer["statusCode"] == 200, answer["body"]


def test_a_stored_batch_publishes_discovery_and_its_newest_state_retained(published):
    store, calls, sent, backend = published
    now = int(time.time())
    ingest_batch(store, [reading(0, ts=now - 120, t=20.0), reading(1, ts=now - 5, t=21.5), reading(2, ts=now - 60)])
    assert iot.handler(stream_event(), None) == {"devices": 1, "states": 1, "batchItemFailures": []}
    topics = [topic for topic, *_ in sent]
    assert topics == [ha.config_topic(DEVICE), ha.state_topic(DEVICE)]
    assert all(retain is True and qos == 1 for _topic, retain, qos, _payload in sent)
    config = json.loads(sent[0][3])
    assert config["cmps"]["temperature"]["device_class"] == "temperature"
    assert config["cmps"]["humidity"]["unit_of_measurement"] == "%"
    assert config["cmps"]["temperature"]["expire_after"] == 3 * 1200, "no connection, so no last will: HA expires"
    assert "availability" not in config
    assert json.loads(sent[1][3])["t"] == 21.5
    assert [topic for topic, _payload in backend.published_payloads] == topics


def test_an_older_batch_delivered_later_publishes_no_state(published):
    store, _calls, sent, _backend = published
    now = int(time.time())
    ingest_batch(store, [reading(0, ts=now - 5, t=22.0)])
    first = stream_event()
    ingest_batch(store, [reading(1, ts=now - 600, t=5.0), reading(2, ts=now - 590, t=5.5)])
    late = {"Records": stream_event()["Records"][len(first["Records"]) :]}
    assert iot.handler(late, None) == {"devices": 1, "states": 0, "batchItemFailures": []}
    assert [topic for topic, *_ in sent] == [ha.config_topic(DEVICE)]


def test_a_late_reading_past_its_window_is_not_published_as_now(published):
    store, _calls, sent, _backend = published
    now = int(time.time())
    ingest_batch(store, [reading(0, ts=now - 5 * 3600, t=3.0)])
    assert iot.handler(stream_event(), None)["states"] == 0
    assert ha.state_topic(DEVICE) not in [topic for topic, *_ in sent]


def test_the_function_is_granted_exactly_what_it_calls(published):
    store, calls, _sent, _backend = published
    ingest_batch(store, [reading(0, ts=int(time.time()) - 5)])
    calls.clear()
    iot.handler(stream_event(), None)
    statements = function_statements("HomeAssistantFunction", logs=False)
    dynamodb = {
        (action.removeprefix("dynamodb:"), s["Resource"]["GetAtt"])
        for s in statements
        for action in s["Action"]
        if action.startswith("dynamodb:") and not s["Resource"]["GetAtt"].endswith("StreamArn")
    }
    assert calls == dynamodb == {("GetItem", "DevicesTable.Arn")}
    assert {a for s in statements for a in s["Action"] if a.startswith(("iot:", "sqs:"))} == {
        "sqs:SendMessage",
        "iot:DescribeEndpoint",
        "iot:Publish",
        "iot:RetainPublish",
    }


def test_the_function_reads_the_device_row_but_never_its_secret(published):
    store, _calls, _sent, _backend = published
    ingest_batch(store, [reading(0, ts=int(time.time()) - 5)])
    asked = []
    store.db.meta.events.register("before-parameter-build.dynamodb.GetItem", lambda params, **_: asked.append(params))
    iot.handler(stream_event(), None)
    (params,) = asked
    projected = {params["ExpressionAttributeNames"][name.strip()] for name in params["ProjectionExpression"].split(",")}
    (read,) = [s for s in function_statements("HomeAssistantFunction") if s["Action"] == ["dynamodb:GetItem"]]
    allowed = read["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]
    assert read["Condition"]["StringEqualsIfExists"]["dynamodb:Select"] == "SPECIFIC_ATTRIBUTES"
    assert projected == set(allowed) and "secret" not in allowed and params["ConsistentRead"] is True
    row = store.get_device_without_secret(DEVICE)
    assert "secret" not in row and row["last_reading"] == store.get_device(DEVICE)["last_reading"]


def test_the_home_assistant_block_is_optional_and_transforms_clean(stack):  # noqa: F811
    import yaml

    from tests.cloud.test_template_stack import _CfnLoader

    assert TEMPLATE["Parameters"]["HomeAssistant"]["Default"] == "off"
    optional = [name for name, r in TEMPLATE["Resources"].items() if r.get("Condition") == "HasHomeAssistant"]
    assert set(optional) == {
        "HomeAssistantFunction",
        "HomeAssistantRole",
        "HomeAssistantLogGroup",
        "HomeAssistantBridgePolicy",
        "HomeAssistantErrorsAlarm",
        "HomeAssistantIteratorAgeAlarm",
    }
    template = yaml.load(deploy.template_for("artifacts", "dhtlink/lambda.zip"), Loader=_CfnLoader)  # noqa: S506
    transformed = transform(template, {}, ManagedPolicyLoader(boto3.client("iam")))
    generated = {name: r for name, r in transformed["Resources"].items() if name.startswith("HomeAssistant")}
    assert {r["Type"] for r in generated.values()} >= {"AWS::Lambda::Function", "AWS::Lambda::EventSourceMapping"}
    assert all(r.get("Condition") == "HasHomeAssistant" for r in generated.values()), "all of it behind the switch"


def test_a_device_whose_publish_fails_is_reported_at_its_first_record(published, monkeypatch):
    store, _calls, sent, _backend = published
    now = int(time.time())
    ingest_batch(store, [reading(0, ts=now - 5)])
    event = stream_event()

    def refuse(client, topic, payload):
        raise RuntimeError("IoT Core throttled")

    monkeypatch.setattr(iot, "publish", refuse)
    answer = iot.handler(event, None)
    first = event["Records"][0]["dynamodb"]["SequenceNumber"]
    assert answer["batchItemFailures"] == [{"itemIdentifier": first}], "retried from the device's first record"
    assert answer["states"] == 0 and sent == []
