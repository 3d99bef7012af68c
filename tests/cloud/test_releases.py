"""Over-the-air releases on the receiver's side (docs/ota.md): the offer in the signed answer
(every store), GET /ota/VERSION/NAME by Range from a folder and, in the deployed stack,
from S3 (moto), and `dhtlink ota publish|rollout|status --aws`."""

import base64
import hashlib
import json
import time

import boto3
import pytest
from moto import mock_aws

from cloud import releases
from cloud.stores.dynamodb import create_tables
from host_tools import ota
from host_tools.cli import main
from tests.cloud.helpers import DEVICE, SECRET
from tests.cloud.test_remote_settings import post
from tests.deploy.test_deploy import TEMPLATE, function_statements

OFFER = {"v": "0.2.0", "sha": "ab" * 32, "size": 1234}


def test_the_signed_answer_offers_a_release_until_the_board_runs_or_rolls_it_back(store):
    now = time.time()
    store.add_device(DEVICE, SECRET, 1)
    assert "ota" not in post(store, {"fw": "0.1.0"}, now), "no release targeted, none offered"
    store.set_ota_target(DEVICE, OFFER)
    assert post(store, {"fw": "0.1.0"}, now)["ota"] == OFFER
    assert post(store, {"fw": "0.1.0", "ota": "download"}, now)["ota"] == OFFER, "offered while it downloads"
    assert "ota" not in post(store, {"fw": "0.2.0", "ota": "trial"}, now), "it runs the release"
    answer = post(
        store,
        {
            "fw": "0.1.0",
            "ota_failed": "0.2.0",
            "ota_error": "3 trial boots failed (crash, hang, or no verified answer)",
        },
        now,
    )
    assert "ota" not in answer, "a release the board rolled back is not offered again"
    store.set_ota_target(DEVICE, None)
    assert store.get_device(DEVICE)["ota_target"] is None


@pytest.fixture
def folder(tmp_path):
    release = tmp_path / "0.2.0"
    release.mkdir()
    (release / "app.mpy").write_bytes(bytes(range(256)) * 4)
    return releases.directory_reader(tmp_path)


def fetch(read, path, range_header=None):
    answer = releases.answer(read, path, range_header)
    assert answer["isBase64Encoded"] is True
    return answer["statusCode"], answer["headers"], base64.b64decode(answer["body"])


def test_release_files_are_served_whole_or_by_range(folder):
    data = bytes(range(256)) * 4
    status, headers, body = fetch(folder, "/ota/0.2.0/app.mpy")
    assert (status, body, headers["Accept-Ranges"]) == (200, data, "bytes")
    status, headers, body = fetch(folder, "/ota/0.2.0/app.mpy", "bytes=100-299")
    assert (status, body, headers["Content-Range"]) == (206, data[100:300], "bytes 100-299/1024")
    status, headers, body = fetch(folder, "/ota/0.2.0/app.mpy", "bytes=1000-")
    assert (status, body, headers["Content-Range"]) == (206, data[1000:], "bytes 1000-1023/1024")
    status, _, body = fetch(folder, "/ota/0.2.0/app.mpy", "bytes=1000-5000")
    assert (status, body) == (206, data[1000:]), "a range past the end stops at the end"


@pytest.mark.parametrize("range_header", ["bytes=1024-", "bytes=5-2", "bytes=-100", "lines=1-2", "bytes=0-1,5-6"])
def test_a_range_that_cannot_be_served_is_416_with_the_size(folder, range_header):
    status, headers, body = fetch(folder, "/ota/0.2.0/app.mpy", range_header)
    assert (status, headers["Content-Range"], body) == (416, "bytes */1024", b"")


@pytest.mark.parametrize(
    "path",
    [
        "/ota/0.2.0/missing.mpy",
        "/ota/0.3.0/app.mpy",
        "/ota/../0.2.0/app.mpy",
        "/ota/0.2.0/../0.2.0/app.mpy",
        "/ota/0.2.0/app.py",
        "/ota/0.2.0",
        "/ota/%2e%2e/app.mpy",
    ],
)
def test_anything_but_a_release_file_is_404(folder, path):
    status, headers, body = fetch(folder, path)
    assert status == 404 and json.loads(body)["error"] == "not_found"


def test_the_template_grants_the_function_reads_of_releases_only():
    function = TEMPLATE["Resources"]["ReleasesFunction"]["Properties"]
    assert function["Handler"] == "cloud.releases.handler"
    assert function["Environment"]["Variables"] == {"RELEASES_BUCKET": {"Ref": "ReleasesBucket"}}
    statements = function_statements("ReleasesFunction")
    grants = {(action, json.dumps(s["Resource"])) for s in statements for action in s["Action"]}
    assert grants == {
        ("s3:GetObject", json.dumps({"Sub": "${ReleasesBucket.Arn}/" + releases.PREFIX + "/*"})),
        ("logs:CreateLogStream", json.dumps({"GetAtt": "ReleasesLogGroup.Arn"})),
        ("logs:PutLogEvents", json.dumps({"GetAtt": "ReleasesLogGroup.Arn"})),
    }, "no s3:ListBucket: which releases exist is not the function's to list"
    bucket = TEMPLATE["Resources"]["ReleasesBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())


def test_the_lambda_serves_release_files_from_s3_reading_each_once(aws_env, monkeypatch):
    data = b"\x4d\x06" + bytes(5000)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="releases-b")
        s3.put_object(Bucket="releases-b", Key="releases/0.2.0/app.mpy", Body=data)
        monkeypatch.setenv("RELEASES_BUCKET", "releases-b")
        monkeypatch.setattr(releases, "_reader", None)
        gets = []
        boto3.DEFAULT_SESSION = None
        client = boto3.client("s3")
        client.meta.events.register("before-call.s3.GetObject", lambda params, **_: gets.append(params))
        monkeypatch.setattr(boto3, "client", lambda name, **kw: client)

        def get(path, range_header):
            event = {"rawPath": path, "headers": {"Range": range_header}, "requestContext": {"http": {"method": "GET"}}}
            answer = releases.handler(event, None)
            return answer["statusCode"], base64.b64decode(answer["body"])

        assert get("/ota/0.2.0/app.mpy", "bytes=0-1023") == (206, data[:1024])
        assert get("/ota/0.2.0/app.mpy", "bytes=1024-2047") == (206, data[1024:2048])
        assert len(gets) == 1, "a published release never changes: one S3 read per file per warm function"
        assert get("/ota/0.2.0/nothing.mpy", "bytes=0-1")[0] == 404
        assert get("/ota/0.9.0/app.mpy", "bytes=0-1")[0] == 404


def test_publish_rollout_and_status_against_a_deployed_stack(aws_env, capsys):
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {
            "ReadingsTableName": {"Value": "stack-readings"},
            "DevicesTableName": {"Value": "stack-devices"},
            "ReleasesBucketName": {"Value": "stack-releases"},
        },
    }
    with mock_aws():
        create_tables(boto3.client("dynamodb"), "stack-readings", "stack-devices")
        boto3.client("s3").create_bucket(Bucket="stack-releases")
        boto3.client("cloudformation").create_stack(StackName="dhtlink", TemplateBody=json.dumps(template))
        for device_id in ("attic-1", "cellar-2"):
            assert main(["devices", "add", device_id, "--aws"]) == 0
        assert main(["ota", "rollout", "0.1.0", "--all", "--aws"]) == 1
        assert "no release 0.1.0 in s3://stack-releases/releases/" in capsys.readouterr().err

        assert main(["ota", "publish", "--aws"]) == 0
        version = ota.app_version()
        assert f"published release {version}" in capsys.readouterr().out
        s3 = boto3.client("s3")
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="stack-releases")["Contents"]}
        manifest = s3.get_object(Bucket="stack-releases", Key=f"releases/{version}/manifest.json")["Body"].read()
        files = json.loads(manifest)["files"]
        assert keys == {f"releases/{version}/{name}" for name in ["manifest.json", *(f["name"] for f in files)]}
        for entry in files:
            body = s3.get_object(Bucket="stack-releases", Key=f"releases/{version}/{entry['name']}")["Body"].read()
            assert hashlib.sha256(body).hexdigest() == entry["sha256"]
        assert main(["ota", "publish", "--aws"]) == 0
        assert "already published with this content" in capsys.readouterr().out

        assert main(["ota", "rollout", version, "--all", "--canary", "1", "--aws"]) == 0
        assert "offered to 1 device(s): attic-1" in capsys.readouterr().out
        item = boto3.client("dynamodb").get_item(TableName="stack-devices", Key={"device_id": {"S": "attic-1"}})
        assert json.loads(json.dumps(item["Item"]["ota_target"]))  # stored in the deployed registry
        assert main(["ota", "status", "--aws", "--json"]) == 0
        rows = {row["device_id"]: row for row in json.loads(capsys.readouterr().out)}
        assert (
            rows["attic-1"]["target"] == version and rows["attic-1"]["state"] == f"{version} offered at its next send"
        )
        assert rows["cellar-2"]["target"] is None and rows["cellar-2"]["state"] == "no release targeted"


def test_a_stack_without_a_releases_bucket_is_named(aws_env, capsys):
    with mock_aws():
        template = {"Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}}, "Outputs": {}}
        boto3.client("cloudformation").create_stack(StackName="old", TemplateBody=json.dumps(template))
        assert main(["ota", "publish", "--aws", "--stack", "old"]) == 1
        assert "stack 'old' has no ReleasesBucketName output: redeploy it" in capsys.readouterr().err
