"""`dhtlink devices remove --aws` on a stack with the Home Assistant block: the device leaves
Home Assistant too (empty retained messages on IoT Core), and only then (moto)."""

import json

import boto3
import pytest
from moto import mock_aws

from cloud import homeassistant as ha
from cloud.homeassistant import iot
from cloud.stores.dynamodb import create_tables
from host_tools.cli import main


def stack_with(outputs):
    return {
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }


@pytest.fixture
def aws(monkeypatch):
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        create_tables(boto3.client("dynamodb"), "stack-readings", "stack-devices")
        # moto serves its IoT data plane only on the region's default host (see test_homeassistant_function.py)
        client = boto3.client("iot-data")
        sent = []
        client.meta.events.register(
            "before-parameter-build.iot-data.Publish",
            lambda params, **_: sent.append((params["topic"], params["retain"], params["payload"])),
        )
        monkeypatch.setattr(iot, "iot_data_client", lambda: client)
        yield sent


def deploy(outputs):
    tables = {"ReadingsTableName": "stack-readings", "DevicesTableName": "stack-devices"}
    template = json.dumps(stack_with(tables | outputs))
    boto3.client("cloudformation").create_stack(StackName="dhtlink", TemplateBody=template)


def test_removing_a_device_removes_it_from_home_assistant(aws, capsys):
    deploy({"HomeAssistantBridgePolicyName": "dhtlink-HomeAssistantBridgePolicy-X"})
    assert main(["devices", "add", "cellar-1", "--aws", "--json"]) == 0
    assert main(["devices", "remove", "cellar-1", "--aws"]) == 0
    assert "removed cellar-1 from Home Assistant" in capsys.readouterr().out
    assert aws == [(ha.config_topic("cellar-1"), True, b""), (ha.state_topic("cellar-1"), True, b"")]


def test_without_the_home_assistant_block_nothing_is_published(aws, capsys):
    deploy({})
    assert main(["devices", "add", "cellar-1", "--aws", "--json"]) == 0
    assert main(["devices", "remove", "cellar-1", "--aws"]) == 0
    assert "Home Assistant" not in capsys.readouterr().out
    assert aws == []
