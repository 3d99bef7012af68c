"""cloud/template.yaml transformed by the AWS SAM translator and created as a stack in moto.

The transform is the one CloudFormation runs on deploy (AWS::Serverless-2016-10-31); the
result is created with moto's CloudFormation, and the created resources are checked. What
moto cannot create is collected from its warnings and must equal the list in docs/deploy.md.
"""

import json
import re
import warnings
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws
from samtranslator.public.translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

from cloud.protocol import Reading, token_sha256
from cloud.stores.base import Delivery
from cloud.stores.dynamodb import DynamoDBStore, create_tables
from host_tools.cli import deploy

REPO = Path(__file__).resolve().parents[2]
INGEST_ATTRIBUTES = {
    "device_id",
    "last_seen",
    "seen_key",
    "last_status",
    "first_seq",
    "max_seq",
    "received",
    "last_reading",
    "recent",
    "errors_at",
}


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (!Ref, !GetAtt, !Sub, ...) as their long forms."""


def _tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        return {name: value.split(".", 1) if suffix == "GetAtt" else value}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


_CfnLoader.add_multi_constructor("!", _tag)


def documented_unsupported() -> set[str]:
    text = (REPO / "docs" / "deploy.md").read_text()
    section = text.split("What moto cannot create", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"`(AWS::[A-Za-z0-9:]+)`", section))


@pytest.fixture
def stack(aws_env):
    template = yaml.load(deploy.template_for("artifacts", "dhtlink/lambda.zip"), Loader=_CfnLoader)  # noqa: S506
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="artifacts")
        boto3.client("s3").put_object(Bucket="artifacts", Key="dhtlink/lambda.zip", Body=b"PK\x05\x06" + b"\0" * 18)
        transformed = transform(template, {}, ManagedPolicyLoader(boto3.client("iam")))
        parameters = [{"ParameterKey": "ReadTokenSha256", "ParameterValue": token_sha256("t" * 43)}]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            boto3.client("cloudformation").create_stack(
                StackName="dhtlink", TemplateBody=json.dumps(transformed), Parameters=parameters
            )
        skipped = {
            m.group(1)
            for w in caught
            if (m := re.search(r"parse (AWS::[A-Za-z0-9:]+) but it's not supported", str(w.message)))
        }
        yield transformed, skipped


def test_the_transformed_template_creates_in_moto(stack):
    transformed, skipped = stack
    cfn = boto3.client("cloudformation")
    assert cfn.describe_stacks(StackName="dhtlink")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    created = {
        r["LogicalResourceId"]: r for r in cfn.list_stack_resources(StackName="dhtlink")["StackResourceSummaries"]
    }
    for logical in (
        "ReadingsTable",
        "DevicesTable",
        "IngestFunction",
        "ReadFunction",
        "IngestLogGroup",
        "ReadLogGroup",
        "ReleasesBucket",
        "ReleasesFunction",
    ):
        assert logical in created, f"{logical} was not created"
    outputs = {
        o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName="dhtlink")["Stacks"][0]["Outputs"]
    }
    assert outputs["ReleasesBucketName"] == created["ReleasesBucket"]["PhysicalResourceId"]
    boto3.client("s3").head_bucket(Bucket=outputs["ReleasesBucketName"])
    dynamodb = boto3.client("dynamodb")
    readings = dynamodb.describe_table(TableName=created["ReadingsTable"]["PhysicalResourceId"])["Table"]
    assert [i["IndexName"] for i in readings["LocalSecondaryIndexes"]] == ["by_time"]
    lambda_ = boto3.client("lambda")
    read_env = lambda_.get_function_configuration(FunctionName=created["ReadFunction"]["PhysicalResourceId"])
    variables = read_env["Environment"]["Variables"]
    assert "READ_TOKEN" not in variables and variables["READ_TOKEN_SHA256"] == token_sha256("t" * 43)
    assert skipped == documented_unsupported(), "docs/deploy.md's list of what moto cannot create is out of date"


def test_log_groups_have_a_deletion_policy_and_ingest_updates_only_its_attributes(stack):
    transformed, _skipped = stack
    resources = transformed["Resources"]
    for name in ("IngestLogGroup", "ReadLogGroup", "AlertsLogGroup"):
        assert resources[name]["DeletionPolicy"] in ("Delete", "Retain")
    policies = [
        statement
        for resource in resources.values()
        if resource["Type"] == "AWS::IAM::Role"
        for policy in resource["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        if "Action" in statement  # not an Fn::If (the alerts functions' optional sns:Publish)
    ]
    # the registry's only writer besides the CLI (the alerts functions update their own table)
    updates = [
        s for s in policies if "dynamodb:UpdateItem" in s["Action"] and "DevicesTable" in json.dumps(s["Resource"])
    ]
    assert len(updates) == 1
    allowed = set(updates[0]["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"])
    assert allowed == INGEST_ATTRIBUTES and "secret" not in allowed


def test_the_batch_transaction_updates_only_the_granted_attributes(aws_env):
    """store_batch's device-row Update rides in TransactWriteItems: IAM checks it as an
    UpdateItem, under the same condition."""
    with mock_aws():
        store = DynamoDBStore("readings", "devices", boto3.client("dynamodb"))
        create_tables(store.db, "readings", "devices")
        sent = []
        store.db.meta.events.register(
            "before-parameter-build.dynamodb.TransactWriteItems", lambda params, **_: sent.append(params)
        )
        store.add_device("porch", "00" * 32, 1)
        store.store_batch(store.get_device("porch"), [Reading(1, 2, 3.0, 4.0)], {"fw": "1"}, 5, 99)
    ((update,),) = [[item["Update"] for item in params["TransactItems"] if "Update" in item] for params in sent]
    names = set(re.findall(r"\b([a-z_]+)\s*=", update["UpdateExpression"])) | set(
        re.findall(r"ADD ([a-z_]+)", update["UpdateExpression"])
    )
    assert "received" in names and names | {"device_id"} <= INGEST_ATTRIBUTES


def test_record_delivery_writes_only_the_granted_attributes(aws_env):
    """What the IAM condition allows is what DynamoDBStore.record_delivery sends (checked on moto)."""
    with mock_aws():
        store = DynamoDBStore("readings", "devices", boto3.client("dynamodb"))
        create_tables(store.db, "readings", "devices")
        sent = []
        store.db.meta.events.register(
            "before-parameter-build.dynamodb.UpdateItem", lambda params, **_: sent.append(params)
        )
        store.add_device("porch", "00" * 32, 1)
        store.record_delivery(store.get_device("porch"), Delivery(5, {"fw": "1"}, [Reading(1, 2, 3.0, 4.0)]))
        store.record_delivery(store.get_device("porch"), Delivery(9, {"sensor_errors": 2}, [Reading(2, 8, 3.0, 4.0)]))
    params = {"UpdateExpression": " ".join(p["UpdateExpression"] for p in sent)}
    assert "errors_at" in params["UpdateExpression"] and "recent" in params["UpdateExpression"]
    names = set(re.findall(r"\b([a-z_]+)\s*=", params["UpdateExpression"])) | set(
        re.findall(r"ADD ([a-z_]+)", params["UpdateExpression"])
    )
    assert names | {"device_id"} <= INGEST_ATTRIBUTES
