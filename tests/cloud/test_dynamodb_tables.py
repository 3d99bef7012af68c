"""create_tables against moto: a create that botocore retried after its answer timed out
(the first attempt made the table) counts as made; a different table of that name does not."""

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from cloud.stores.dynamodb import create_tables


def test_a_retried_create_finds_the_table_it_made_and_carries_on(aws_env):
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(db, "readings", "devices")
        # What the retry of a CreateTable whose answer timed out meets: the table, made.
        create_tables(db, "readings", "devices")
        assert sorted(db.list_tables()["TableNames"]) == ["devices", "readings"]


def test_a_different_table_of_that_name_is_not_taken_for_it(aws_env):
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        db.create_table(
            TableName="readings",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        )
        with pytest.raises(ClientError, match="ResourceInUseException"):
            create_tables(db, "readings", "devices")
