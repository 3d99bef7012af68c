import zipfile
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws

from host_tools import deploy
from host_tools.cli import main


class CloudFormationLoader(yaml.SafeLoader):
    """Reads !Ref, !GetAtt, !Sub ... as plain values, enough to inspect the template."""


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


CloudFormationLoader.add_multi_constructor("!", _tag)
TEMPLATE = yaml.load(deploy.TEMPLATE.read_text(), Loader=CloudFormationLoader)  # noqa: S506 - SafeLoader subclass


def actions(function):
    statements = TEMPLATE["Resources"][function]["Properties"]["Policies"][0]["Statement"]
    return {a for s in statements for a in s["Action"]}


def test_template_lints_clean():
    deploy.lint()


def test_ingest_may_only_write_readings_and_touch_devices():
    assert actions("IngestFunction") == {
        "dynamodb:PutItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
    }
    assert "READ_TOKEN" not in str(TEMPLATE["Resources"]["IngestFunction"])


def test_read_function_may_only_read():
    assert actions("ReadFunction") <= {"dynamodb:Query", "dynamodb:GetItem"}


def test_tables_match_the_store():
    readings = TEMPLATE["Resources"]["ReadingsTable"]["Properties"]
    assert readings["BillingMode"] == "PAY_PER_REQUEST"
    assert readings["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert readings["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert readings["LocalSecondaryIndexes"][0]["IndexName"] == "by_time"
    devices = TEMPLATE["Resources"]["DevicesTable"]["Properties"]
    index = devices["GlobalSecondaryIndexes"][0]
    assert index["IndexName"] == "all_devices" and "secret" not in index["Projection"]["NonKeyAttributes"]
    assert set(TEMPLATE["Outputs"]) == {"ApiUrl", "ReadingsTableName", "DevicesTableName"}


def test_artifact_is_cloud_only(tmp_path):
    archive = deploy.build_artifact(tmp_path)
    names = zipfile.ZipFile(archive).namelist()
    assert "cloud/ingest.py" in names and "cloud/read_api.py" in names and "cloud/stores/dynamodb.py" in names
    assert all(n.startswith("cloud/") and n.endswith(".py") for n in names)
    assert not any("/local/" in n or "__pycache__" in n for n in names)
    assert archive.stat().st_size < 64 * 1024
    assert deploy.build_artifact(tmp_path).read_bytes() == archive.read_bytes(), "the build is reproducible"


def test_without_credentials_it_validates_and_says_what_is_missing(tmp_path, monkeypatch, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(deploy, "BUILD", tmp_path / "build")
    assert main(["deploy"]) == 1
    captured = capsys.readouterr()
    assert "validated" in captured.out
    assert "no AWS credentials" in captured.err and "Nothing was deployed" in captured.err
    assert captured.err.count("\n") == 1


def test_deploy_uploads_the_artifact_and_creates_a_change_set(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        session = boto3.Session(region_name="eu-west-1")
        archive = deploy.build_artifact(tmp_path)
        calls = []
        session.events.register("before-call.cloudformation", lambda model, **_: calls.append(model.name))
        try:
            deploy.deploy(session, "dhtlink-test", archive, None)
        except Exception as error:  # noqa: BLE001 - moto cannot run the SAM transform; see below
            # moto stops at the Serverless transform; everything before it happened for real.
            assert "CreateChangeSet" in calls, error
        s3 = session.client("s3")
        (bucket,) = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert bucket.startswith("dhtlink-artifacts-") and bucket.endswith("eu-west-1")
        (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert body == archive.read_bytes()


def test_codeuri_is_rewritten_for_the_upload():
    text = deploy.template_for("bkt", "dhtlink/abc.zip")
    assert "Bucket: bkt" in text and "Key: dhtlink/abc.zip" in text and "../.build" not in text


@pytest.mark.parametrize("stack", ["1abc", "has space", "x" * 129])
def test_bad_stack_names(stack, capsys):
    assert main(["deploy", "--stack", stack]) == 2
    assert "--stack" in capsys.readouterr().err


def test_build_dir_is_ignored_by_git():
    assert ".build/" in (Path(deploy.REPO) / ".gitignore").read_text()
