"""The store contract again, over HTTP against the DynamoDB server the bench starts (moto's
server app, serialized, rolling back only the items a cancelled transaction touched: see
host_tools/dynamodb_server.py). Passing here and in-process shows the server keeps moto's
outcomes, all or nothing included."""

import io
import itertools
import json

import pytest

from cloud.stores.dynamodb import DynamoDBStore, create_tables
from tests.cloud.servers import PATIENT_S, moto_server  # noqa: F401 - a fixture
from tests.cloud.test_store_contract import *  # noqa: F403 - the same tests, this module's store

_tables = itertools.count()


@pytest.fixture
def store(moto_server):  # noqa: F811
    db = moto_server.client(read_timeout=PATIENT_S)
    n = next(_tables)
    create_tables(db, f"contract-r{n}", f"contract-d{n}")
    return DynamoDBStore(f"contract-r{n}", f"contract-d{n}", db)


def _counter_table(db) -> str:
    name = f"tokens-{next(_tables)}"
    db.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def _add(table: str, key: str) -> list[dict]:
    return [
        {
            "Update": {
                "TableName": table,
                "Key": {"id": {"S": key}},
                "UpdateExpression": "ADD n :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        }
    ]


def test_a_transaction_sent_again_with_its_token_is_applied_once(moto_server):  # noqa: F811
    from botocore.exceptions import ClientError

    db = moto_server.client(read_timeout=PATIENT_S)
    table = _counter_table(db)

    def count() -> int:
        return int(db.get_item(TableName=table, Key={"id": {"S": "a"}})["Item"]["n"]["N"])

    db.transact_write_items(TransactItems=_add(table, "a"), ClientRequestToken="first")
    db.transact_write_items(TransactItems=_add(table, "a"), ClientRequestToken="first")  # botocore's retry
    assert count() == 1
    with pytest.raises(ClientError) as other_items:
        db.transact_write_items(TransactItems=_add(table, "b"), ClientRequestToken="first")
    assert other_items.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"
    assert "Item" not in db.get_item(TableName=table, Key={"id": {"S": "b"}})
    db.transact_write_items(TransactItems=_add(table, "a"), ClientRequestToken="second")
    assert count() == 2


def test_a_token_is_remembered_for_ten_minutes_and_only_for_transactions_that_succeeded():
    from host_tools.dynamodb_server import TOKEN_WINDOW_S, TRANSACT_WRITE_TARGET, _idempotent_transactions

    applied = []
    now = [0.0]

    def moto(environ, start_response):
        request = json.loads(environ["wsgi.input"].read())
        applied.append(request["TransactItems"])
        start_response("400 Bad Request" if request["TransactItems"] == "cancelled" else "200 OK", [])
        return [b"{}"]

    app = _idempotent_transactions(moto, clock=lambda: now[0])

    def send(items: str, token: str = "t") -> str:
        body = json.dumps({"TransactItems": items, "ClientRequestToken": token}).encode()
        environ = {
            "HTTP_X_AMZ_TARGET": TRANSACT_WRITE_TARGET,
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
        }
        answered = []
        app(environ, lambda status, headers: answered.append(status))
        return answered[0]

    assert send("cancelled", token="c") == send("cancelled", token="c") == "400 Bad Request"
    assert applied == ["cancelled", "cancelled"]  # a cancelled transaction may be sent again
    assert send("x") == "200 OK" and send("x") == "200 OK"
    assert applied.count("x") == 1
    now[0] = TOKEN_WINDOW_S + 1
    assert send("y") == "200 OK"  # the window has passed: a new transaction
    assert applied[-1] == "y"
