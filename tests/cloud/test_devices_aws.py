"""`dhtlink devices --aws`: table names from the stack's outputs, the registry in DynamoDB (moto)."""

import json

import boto3
from moto import mock_aws

from cloud.stores.dynamodb import create_tables
from host_tools.cli import main

OUTPUTS_ONLY = {
    "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
    "Outputs": {"ReadingsTableName": {"Value": "stack-readings"}, "DevicesTableName": {"Value": "stack-devices"}},
}


def test_devices_against_a_deployed_stack(aws_env, capsys):
    with mock_aws():
        create_tables(boto3.client("dynamodb"), "stack-readings", "stack-devices")
        boto3.client("cloudformation").create_stack(StackName="dhtlink", TemplateBody=json.dumps(OUTPUTS_ONLY))
        assert main(["devices", "add", "cellar-1", "--aws", "--json"]) == 0
        secret = json.loads(capsys.readouterr().out)["secret"]
        item = boto3.client("dynamodb").get_item(TableName="stack-devices", Key={"device_id": {"S": "cellar-1"}})
        assert item["Item"]["secret"]["S"] == secret
        assert main(["devices", "list", "--aws"]) == 0
        listing = capsys.readouterr().out
        assert "cellar-1" in listing and secret not in listing


def test_missing_stack_is_one_clear_line(aws_env, capsys):
    with mock_aws():
        assert main(["devices", "list", "--aws", "--stack", "nope"]) == 1
        err = capsys.readouterr().err
        assert "no CloudFormation stack 'nope'" in err and "make deploy" in err and err.count("\n") == 1
