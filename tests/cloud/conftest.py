import boto3
import pytest
from moto import mock_aws

from cloud.stores.dynamodb import DynamoDBStore, create_tables
from cloud.stores.sqlite import SQLiteStore


@pytest.fixture
def aws_env(monkeypatch):
    # moto answers in-process; these keep boto3 off any real account.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request, tmp_path, aws_env):
    if request.param == "sqlite":
        yield SQLiteStore(tmp_path / "store.sqlite3")
        return
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client, "readings", "devices")
        yield DynamoDBStore("readings", "devices", client)
