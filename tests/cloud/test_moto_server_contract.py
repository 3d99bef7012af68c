"""The store contract again, over HTTP against the DynamoDB server the bench starts (moto's
server app, serialized, rolling back only the items a cancelled transaction touched: see
host_tools/dynamodb_server.py). Passing here and in-process shows the server keeps moto's
outcomes, all or nothing included."""

import itertools

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
