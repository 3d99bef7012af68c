import json
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from cloud.protocol import token_sha256
from cloud.stores.dynamodb import create_tables
from host_tools.cli import deploy, main
from host_tools.models.capacity import load_template

TEMPLATE = load_template(deploy.TEMPLATE.read_text())


def function_statements(function, logs=True):
    """The statements of a function's own role (every function has one), `!If [cond,
    statement, AWS::NoValue]` read as granted; without the log statement unless `logs`."""
    role = TEMPLATE["Resources"][function]["Properties"]["Role"]["GetAtt"].removesuffix(".Arn")
    listed = [
        statement
        for policy in TEMPLATE["Resources"][role]["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    statements = [s["If"][1] if "If" in s else s for s in listed]
    return [s for s in statements if logs or not s["Action"][0].startswith("logs:")]


def actions(function):
    return {a for s in function_statements(function, logs=False) for a in s["Action"]}


def test_template_lints_clean():
    deploy.lint()


def test_ingest_may_only_write_readings_and_touch_devices():
    assert actions("IngestFunction") == {
        "dynamodb:PutItem",
        "dynamodb:Query",  # the highest stored seq, for a seq conflict's next_seq
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
    }
    assert "READ_TOKEN" not in str(TEMPLATE["Resources"]["IngestFunction"])


def test_read_function_may_only_read():
    assert actions("ReadFunction") <= {"dynamodb:Query", "dynamodb:GetItem"}


def test_the_dashboard_function_touches_no_table():
    assert actions("DashboardFunction") == set()


FUNCTIONS = [name for name, r in TEMPLATE["Resources"].items() if r["Type"] == "AWS::Serverless::Function"]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_has_its_own_role_logging_to_its_own_group_only(function):
    properties = TEMPLATE["Resources"][function]["Properties"]
    assert "Policies" not in properties, "SAM's role would carry AWS managed policies (any log group)"
    role = TEMPLATE["Resources"][properties["Role"]["GetAtt"].removesuffix(".Arn")]["Properties"]
    assert "ManagedPolicyArns" not in role
    others = [f for f in FUNCTIONS if f != function]
    assert all(TEMPLATE["Resources"][f]["Properties"]["Role"] != properties["Role"] for f in others)
    own_group = {"GetAtt": properties["LoggingConfig"]["LogGroup"]["Ref"] + ".Arn"}
    logs = [s for s in function_statements(function) if any(a.startswith("logs:") for a in s["Action"])]
    assert logs and all(s["Resource"] == own_group for s in logs)
    assert {a for s in logs for a in s["Action"]} == {"logs:CreateLogStream", "logs:PutLogEvents"}


def test_no_table_uses_the_paid_kms_key():
    for name, resource in TEMPLATE["Resources"].items():
        if resource["Type"] == "AWS::DynamoDB::Table":
            # absent: the AWS-owned key, free; SSEEnabled true would pick the AWS-managed KMS key, billed per request
            assert "SSESpecification" not in resource["Properties"], name


def test_every_statement_names_exact_table_arns():
    for function in ("IngestFunction", "ReadFunction"):
        for statement in function_statements(function, logs=False):
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for resource in resources:
                assert resource in (
                    {"GetAtt": "ReadingsTable.Arn"},
                    {"GetAtt": "DevicesTable.Arn"},
                    {"Sub": "${ReadingsTable.Arn}/index/by_time"},
                    {"Sub": "${DevicesTable.Arn}/index/by_id"},
                    {"Sub": "${DevicesTable.Arn}/index/by_last_seen"},
                    {"GetAtt": "AlertsTable.Arn"},
                ), (function, resource)


class RecordingDynamoDB:
    def __init__(self):
        self.tables = {}

    def create_table(self, TableName, **definition):  # noqa: N803 - boto3's argument name
        self.tables[TableName] = definition


def test_tables_are_defined_exactly_as_the_store_creates_them():
    recorded = RecordingDynamoDB()
    create_tables(recorded, "readings", "devices")
    for resource, name in (("ReadingsTable", "readings"), ("DevicesTable", "devices")):
        template = TEMPLATE["Resources"][resource]["Properties"]
        store = recorded.tables[name]
        for key in (
            "BillingMode",
            "AttributeDefinitions",
            "KeySchema",
            "LocalSecondaryIndexes",
            "GlobalSecondaryIndexes",
        ):
            assert template.get(key) == store.get(key), (resource, key)


def test_tables_match_the_store():
    readings = TEMPLATE["Resources"]["ReadingsTable"]["Properties"]
    assert readings["BillingMode"] == "PAY_PER_REQUEST"
    assert readings["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert readings["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert readings["LocalSecondaryIndexes"][0]["IndexName"] == "by_time"
    devices = TEMPLATE["Resources"]["DevicesTable"]["Properties"]
    indexes = {index["IndexName"]: index for index in devices["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"by_id", "by_last_seen"}
    for index in indexes.values():
        assert index["KeySchema"][0] == {"AttributeName": "fleet_shard", "KeyType": "HASH"}
        assert "secret" not in index["Projection"]["NonKeyAttributes"]
    assert set(TEMPLATE["Outputs"]) == {
        "ApiUrl",
        "ReadingsTableName",
        "DevicesTableName",
        "AlertsTableName",
        "AlertsTopicArn",
        "ReleasesBucketName",
        "HomeAssistantBridgePolicyName",
    }


def test_bytecode_names_where_lambda_unpacks_the_zip(tmp_path):
    if not deploy.compile_for_runtime(tmp_path):  # an empty staging directory: only whether it can
        pytest.skip(f"no {deploy.RUNTIME_PYTHON} here: the zip carries source only")
    archive = deploy.build_artifact(tmp_path / "build")
    with zipfile.ZipFile(archive) as zf:
        pyc = zf.read("cloud/__pycache__/ingest.cpython-312.pyc")
    assert b"/var/task/cloud/ingest.py" in pyc and str(tmp_path).encode() not in pyc


def test_artifact_is_cloud_only(tmp_path):
    archive = deploy.build_artifact(tmp_path)
    names = zipfile.ZipFile(archive).namelist()
    assert "cloud/ingest.py" in names and "cloud/read_api.py" in names and "cloud/stores/dynamodb.py" in names
    sources = [n for n in names if "__pycache__" not in n]
    static = "cloud/dashboard/static/"
    assert all(n.startswith("cloud/") and (n.endswith(".py") or n.startswith(static)) for n in sources)
    assert not any("/local/" in n for n in names)
    # bytecode only for the Lambda runtime's Python, one file a module, when the build had that Python
    bytecode = [n for n in names if "__pycache__" in n]
    assert all(n.endswith(".cpython-312.pyc") for n in bytecode)
    assert len(bytecode) in (0, sum(n.endswith(".py") for n in names))
    # Sources: 106 KiB, ~38 KiB of it the dashboard's files (their own 40 KB budget:
    # tests/dashboard), never imported by a handler. Bytecode adds ~145 KiB (compressed).
    limit = 272 if bytecode else 112
    assert archive.stat().st_size < limit * 1024
    assert deploy.build_artifact(tmp_path).read_bytes() == archive.read_bytes(), "the build is reproducible"


def handler_closure() -> set[str]:
    """The files of every cloud module a handler the template names imports, at any depth
    (lazy imports inside functions included), with their packages' __init__.py."""
    import ast

    root = Path(deploy.REPO)
    pending = [
        resource["Properties"]["Handler"].rsplit(".", 1)[0]
        for resource in TEMPLATE["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
    ]
    seen: set[str] = set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        path = root / (module.replace(".", "/") + ".py")
        if not path.exists():
            path = root / module.replace(".", "/") / "__init__.py"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                pending += [a.name for a in node.names if a.name.startswith("cloud.")]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cloud"):
                pending.append(node.module)
                for alias in node.names:
                    candidate = f"{node.module}.{alias.name}"
                    if (root / (candidate.replace(".", "/") + ".py")).exists():
                        pending.append(candidate)
    files = set()
    for module in seen:
        parts = module.split(".")
        for depth in range(1, len(parts)):
            files.add("/".join(parts[:depth]) + "/__init__.py")
        single = "/".join(parts) + ".py"
        files.add(single if (root / single).exists() else "/".join(parts) + "/__init__.py")
    return files


def test_the_artifact_holds_only_what_a_handler_imports(tmp_path):
    """No host-only code in the Lambda zip: the registry, CloudFormation lookups, the local
    endpoint and its token file live on the host side."""
    names = {n for n in zipfile.ZipFile(deploy.build_artifact(tmp_path)).namelist() if n.endswith(".py")}
    assert names <= handler_closure(), f"in the zip but imported by no handler: {sorted(names - handler_closure())}"
    text = b"".join(zipfile.ZipFile(deploy.build_artifact(tmp_path)).read(n) for n in names)
    assert b"describe_stacks" not in text and b"read-token" not in text


def test_without_credentials_it_validates_and_says_what_is_missing(tmp_path, monkeypatch, capsys):
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ):
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
    assert "built" in captured.out and "bytes, cloud/ only" in captured.out
    assert "missing AWS credentials" in captured.err and "an AWS region" in captured.err
    assert f"the artifact is ready at {tmp_path / 'build' / 'dhtlink-lambda.zip'}" in captured.err
    assert captured.err.count("\n") == 1


def test_with_credentials_but_no_region_only_the_region_is_missing(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.write_text("")
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(deploy, "BUILD", tmp_path / "build")
    assert main(["deploy"]) == 1
    err = capsys.readouterr().err
    assert "missing an AWS region" in err and "AWS credentials" not in err


def test_deploy_against_moto_uploads_creates_then_updates_keeping_parameters(tmp_path, monkeypatch):
    # moto runs CreateChangeSet/ExecuteChangeSet but does not expand the SAM transform: the
    # AWS::Serverless::* resources (functions, API) and the alarms are skipped, so ApiUrl is
    # not produced. What is checked here: the upload, the calls and their parameters, and the
    # DynamoDB tables, which moto does create from the template.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        session = boto3.Session(region_name="eu-west-1")
        archive = deploy.build_artifact(tmp_path)
        calls = []
        session.events.register(
            "before-parameter-build.cloudformation", lambda model, params, **_: calls.append((model.name, dict(params)))
        )
        created = deploy.deploy(session, "dhtlink-test", archive, None, {"RetentionDays": "30"})
        names = [name for name, _ in calls]
        assert names.index("CreateChangeSet") < names.index("ExecuteChangeSet")
        change_set = dict(calls)["CreateChangeSet"]
        assert change_set["ChangeSetType"] == "CREATE"
        assert change_set["Capabilities"] == ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
        given = {p["ParameterKey"]: p.get("ParameterValue") for p in change_set["Parameters"]}
        assert given["RetentionDays"] == "30" and len(created["ReadToken"]) >= 32, "a new stack's token is shown once"
        assert given["ReadTokenSha256"] == token_sha256(created["ReadToken"]), "AWS gets only the token's hash"
        assert created["ReadToken"] not in json.dumps(change_set)

        s3 = session.client("s3")
        # the artifacts bucket deploy made, beside the stack's own (its releases)
        (bucket,) = [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith("dhtlink-artifacts-")]
        assert bucket.startswith("dhtlink-artifacts-eu-west-1-") and len(bucket.rsplit("-", 1)[1]) == 16, (
            "a name nobody can predict (and take first in another account)"
        )
        assert deploy.artifact_bucket(s3, "eu-west-1", "123456789012") == bucket, "found again, not a second one"
        (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == archive.read_bytes()
        assert f"Bucket: {bucket}" in change_set["TemplateBody"] and f"Key: {key}" in change_set["TemplateBody"]

        tables = session.client("dynamodb").list_tables()["TableNames"]
        assert len(tables) == 3, tables

        calls.clear()
        # Deploying the same sources again: an update that changes nothing, and says so.
        updated = deploy.deploy(session, "dhtlink-test", deploy.build_artifact(tmp_path), None)
        assert "ReadToken" not in updated, "an update never prints the token again"
        names = [name for name, _ in calls]
        assert "CreateChangeSet" in names and "ExecuteChangeSet" not in names
        change_set = dict(calls)["CreateChangeSet"]
        assert change_set["ChangeSetType"] == "UPDATE"
        assert all(p.get("UsePreviousValue") for p in change_set["Parameters"]), change_set["Parameters"]


def test_update_parameters_keep_what_was_not_given():
    kept = deploy.stack_parameters(True, {"ReadToken": None, "RetentionDays": "90"})
    assert kept == [
        {"ParameterKey": "ReadTokenSha256", "UsePreviousValue": True},
        {"ParameterKey": "RetentionDays", "ParameterValue": "90"},
    ]
    new = deploy.stack_parameters(False, {"ReadToken": None, "RetentionDays": None})
    assert [p["ParameterKey"] for p in new] == ["ReadTokenSha256"], "a new stack takes the template defaults"
    assert new[0]["ParameterValue"] != deploy.stack_parameters(False, {"ReadToken": None})[0]["ParameterValue"]


def test_codeuri_is_rewritten_for_the_upload():
    text = deploy.template_for("bkt", "dhtlink/abc.zip")
    assert "Bucket: bkt" in text and "Key: dhtlink/abc.zip" in text and "../.build" not in text


@pytest.mark.parametrize("stack", ["1abc", "has space", "x" * 129])
def test_bad_stack_names(stack, capsys):
    assert main(["deploy", "--stack", stack]) == 2
    assert "--stack" in capsys.readouterr().err


def test_build_dir_is_ignored_by_git():
    assert ".build/" in (Path(deploy.REPO) / ".gitignore").read_text()


def test_the_artifact_runs_on_its_own(tmp_path):
    """The handlers import and answer from the built artifact alone (as Lambda unpacks it), without cloud.local."""
    deploy.build_artifact(tmp_path)
    code = (
        "import json, sys, cloud.ingest, cloud.read_api\n"
        "assert cloud.ingest.__file__.startswith(sys.argv[1]), cloud.ingest.__file__\n"
        "event = {'version': '2.0', 'rawPath': '/data', 'headers': {'content-type': 'application/json'},"
        " 'body': '{}', 'isBase64Encoded': False, 'requestContext': {'http': {'method': 'POST', 'path': '/data'}}}\n"
        "answer = cloud.ingest.handler(event, None)\n"
        "assert not any(m.startswith('cloud.local') for m in sys.modules)\n"
        "print(answer['statusCode'])\n"
    )
    artifact = tmp_path / "lambda"
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(artifact),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "READINGS_TABLE": "readings",
        "DEVICES_TABLE": "devices",
    }
    out = subprocess.run(
        [sys.executable, "-c", code, str(artifact)], cwd=artifact, env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "401"  # unsigned: refused before any DynamoDB call


def test_the_deploy_command_prints_the_outputs_and_the_board_url(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(deploy, "BUILD", tmp_path / "build")
    with mock_aws():
        assert main(["deploy", "--region", "eu-west-1", "--stack", "dhtlink-cli", "--retention", "90d"]) == 0
        parameters = boto3.client("cloudformation", region_name="eu-west-1").describe_stacks(StackName="dhtlink-cli")
    given = {p["ParameterKey"]: p["ParameterValue"] for p in parameters["Stacks"][0]["Parameters"]}
    assert given["RetentionDays"] == "90"
    out = capsys.readouterr().out
    assert (tmp_path / "build" / "dhtlink-lambda.zip").exists()
    assert "ReadToken" in out and "shown once" in out and "/data" in out


@pytest.mark.parametrize(
    "flags, option",
    [
        (["--retention", "0"], "--retention must be from 1d to 36500d, got 0 (a bare number is seconds)"),
        (["--retention", "36h"], "--retention must be a whole number of days"),
        (["--retention-days", "0"], "--retention must be from 1d"),  # the old spelling, still checked
        (["--log-retention", "2d"], "--log-retention must be one of 1d, 3d"),
        (["--alarm-email", "not an address"], "--alarm-email"),
    ],
)
def test_bad_options_are_refused_before_building(flags, option, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(deploy, "BUILD", tmp_path / "build")
    assert main(["deploy", *flags]) == 2
    assert option in capsys.readouterr().err
    assert not (tmp_path / "build").exists()
