"""A throttled or locked store answers 503 with Retry-After (signed when the request
verified), never a 500, and loses nothing: the same batch sent later lands.

DynamoDB errors are raised by the boto3 client itself (a before-call hook on the moto
client raises the ClientError DynamoDB would); SQLite's lock is a real second connection
holding the file's write lock."""

import json
import sqlite3
import time

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from moto import mock_aws

from cloud import ingest, settings, signing
from cloud.local import LocalEndpoint
from cloud.stores.base import StoreBusy
from cloud.stores.dynamodb import WRITE_ATTEMPTS, DynamoDBStore, create_tables
from cloud.stores.sqlite import SQLiteStore
from tests.cloud.helpers import DEVICE, SECRET, body_of, post_event, reading

RETENTION_S = 400 * 86400


def fail(client, operation, code, times=1, reasons=None):
    """Make the next `times` calls of `operation` raise ClientError `code` (with
    CancellationReasons for a cancelled transaction)."""
    left = [times]

    def raise_error(**_):
        if left[0]:
            left[0] -= 1
            response = {"Error": {"Code": code, "Message": f"injected {code}"}}
            if reasons is not None:
                response["CancellationReasons"] = reasons
            raise ClientError(response, operation)

    client.meta.events.register(f"before-call.dynamodb.{operation}", raise_error)
    return left


@pytest.fixture
def dynamodb(aws_env):
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client, "readings", "devices")
        store = DynamoDBStore("readings", "devices", client)
        store.add_device(DEVICE, SECRET, 1)
        yield store


def check_busy(status, headers, body, request_signature, signed=True):
    assert status == 503
    assert json.loads(body)["error"] == "store_busy"
    assert headers["Retry-After"] == str(ingest.RETRY_AFTER_S)
    if signed:
        assert signing.verify_answer(SECRET, request_signature, 503, body, headers.get("X-Signature"))
    else:
        assert "X-Signature" not in headers


def handle(store, event):
    response = ingest.handle(event, store, time.time(), RETENTION_S)
    return response["statusCode"], response["headers"], response["body"].encode()


THROTTLING_CODES = [
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "TransactionConflictException",
]


@pytest.mark.parametrize("code", THROTTLING_CODES)
def test_throttled_write_is_a_signed_503_and_the_resend_lands(dynamodb, code):
    event = post_event(body_of([reading(1), reading(2)]))
    fail(dynamodb.db, "TransactWriteItems", code)
    check_busy(*handle(dynamodb, event), event["headers"]["x-signature"])
    assert dynamodb.query_readings(DEVICE)[0] == []
    assert dynamodb.get_device(DEVICE)["last_seen"] is None
    status, _, body = handle(dynamodb, event)
    assert (status, json.loads(body)["accepted"]) == (200, 2)


@pytest.mark.parametrize("reason", ["TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"])
def test_a_transaction_cancelled_on_every_attempt_is_a_503(dynamodb, reason):
    event = post_event(body_of([reading(1), reading(2)]))
    why = [{"Code": "None"}, {"Code": reason}, {"Code": "None"}]  # two readings, then the device row
    left = fail(dynamodb.db, "TransactWriteItems", "TransactionCanceledException", WRITE_ATTEMPTS, why)
    check_busy(*handle(dynamodb, event), event["headers"]["x-signature"])
    assert left == [0] and dynamodb.query_readings(DEVICE)[0] == []


def test_a_transaction_cancelled_once_is_retried_in_the_same_request(dynamodb):
    why = [{"Code": "TransactionConflict"}, {"Code": "None"}]  # the reading, then the device row
    fail(dynamodb.db, "TransactWriteItems", "TransactionCanceledException", 2, why)
    status, _, body = handle(dynamodb, post_event(body_of([reading(1)])))
    assert (status, json.loads(body)["accepted"]) == (200, 1)


def test_throttled_registry_read_is_an_unsigned_503(dynamodb):
    # Before the device row is read nothing is verified, so nothing can be signed.
    fail(dynamodb.db, "GetItem", "ProvisionedThroughputExceededException")
    check_busy(*handle(dynamodb, post_event(body_of([reading(1)]))), None, signed=False)


def test_the_device_row_commits_in_the_readings_transaction(dynamodb):
    """Up to 99 new readings, the row's counters ride in the readings' transaction: a
    throttled transaction stores neither, so the 503 saying nothing was stored is exact."""
    event = post_event(body_of([reading(1), reading(2)]))
    fail(dynamodb.db, "TransactWriteItems", "ThrottlingException")
    check_busy(*handle(dynamodb, event), event["headers"]["x-signature"])
    assert dynamodb.query_readings(DEVICE)[0] == [] and dynamodb.get_device(DEVICE)["received"] == 0
    status, _, body = handle(dynamodb, event)
    assert (status, json.loads(body)["accepted"]) == (200, 2)
    assert dynamodb.get_device(DEVICE)["received"] == 2


def test_a_full_batch_whose_row_update_is_throttled_is_answered_as_stored(dynamodb):
    """100 readings fill a transaction; the row is updated after it. Throttled there, the
    readings are stored all the same: a 200 that says so, never a 503 saying nothing was."""
    now = int(time.time())
    event = post_event(body_of([reading(seq, ts=now - 200 + seq) for seq in range(100)]))
    fail(dynamodb.db, "UpdateItem", "ThrottlingException")
    status, _, body = handle(dynamodb, event)
    assert (status, json.loads(body)["accepted"]) == (200, 100)
    assert len(dynamodb.query_readings(DEVICE, limit=1000)[0]) == 100
    assert dynamodb.get_device(DEVICE)["received"] == 0  # the row's update never came
    # The board re-sends (its answer was lost, or it was killed first): the duplicates above the
    # row's max_seq were never counted, and are now, once.
    for _ in range(2):
        status, _, body = handle(dynamodb, event)
        assert (status, json.loads(body)["duplicates"]) == (200, 100)
        assert dynamodb.get_device(DEVICE)["received"] == 100


def test_a_resend_counted_before_the_first_requests_row_update_is_counted_once(dynamodb):
    """The board re-sends a full batch while its first request is between the readings'
    transaction and the row's update: the re-send finds them stored and above the row's
    max_seq, and counts them; the first request's update then counts nothing twice."""
    now = int(time.time())
    event = post_event(body_of([reading(seq, ts=now - 200 + seq) for seq in range(100)]))
    resends = []

    def resend_first(**_):
        if not resends:
            resends.append(None)  # before the call: the re-send's own UpdateItem comes here too
            resends[0] = handle(dynamodb, event)

    dynamodb.db.meta.events.register("before-call.dynamodb.UpdateItem", resend_first)
    status, _, body = handle(dynamodb, event)
    assert (status, json.loads(body)["accepted"]) == (200, 100)
    status, _, body = resends[0]
    assert (status, json.loads(body)["duplicates"]) == (200, 100)
    assert dynamodb.get_device(DEVICE)["received"] == 100
    assert dynamodb.get_device(DEVICE)["max_seq"] == 99


def test_a_busy_sqlite_file_during_summaries_does_not_deny_a_stored_batch(tmp_path, monkeypatch):
    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.add_device(DEVICE, SECRET, 1)

    def busy(*_args):
        raise StoreBusy("SQLite file stayed locked: database is locked")

    monkeypatch.setattr(store, "update_rollups", busy)
    status, _, body = handle(store, post_event(body_of([reading(1), reading(2)])))
    assert (status, json.loads(body)["accepted"]) == (200, 2)


def test_other_dynamodb_errors_are_not_hidden_as_busy(dynamodb):
    fail(dynamodb.db, "TransactWriteItems", "ValidationException")
    with pytest.raises(ClientError):
        handle(dynamodb, post_event(body_of([reading(1)])))


def test_lambda_entry_point_answers_503(aws_env, monkeypatch):
    monkeypatch.setenv("READINGS_TABLE", "r")
    monkeypatch.setenv("DEVICES_TABLE", "d")
    settings.lambda_ingest_store.cache_clear()
    try:
        with mock_aws():
            _, store = settings.lambda_ingest_store()  # the handler's own client
            create_tables(store.db, "r", "d")
            DynamoDBStore("r", "d", store.db).add_device(DEVICE, SECRET, 1)
            fail(store.db, "TransactWriteItems", "RequestLimitExceeded")
            event = post_event(body_of([reading(1)]))
            answer = ingest.handler(event, None)
            check_busy(
                answer["statusCode"], answer["headers"], answer["body"].encode(), event["headers"]["x-signature"]
            )
    finally:
        settings.lambda_ingest_store.cache_clear()


def post_http(endpoint, readings):
    body = body_of(readings)
    headers = signing.signed_headers(SECRET, DEVICE, int(time.time()), "/data", body)
    answer = requests.post(endpoint.url + "/data", data=body, headers=headers, timeout=10)
    return answer, headers["X-Signature"]


def test_local_endpoint_on_dynamodb_answers_503_over_http(dynamodb, tmp_path):
    fail(dynamodb.db, "TransactWriteItems", "ProvisionedThroughputExceededException")
    with LocalEndpoint(tmp_path, store=dynamodb, read_token="t") as endpoint:
        answer, request_signature = post_http(endpoint, [reading(1)])
        check_busy(answer.status_code, answer.headers, answer.content, request_signature)
        assert post_http(endpoint, [reading(1)])[0].json()["accepted"] == 1


@pytest.fixture
def locked_sqlite(tmp_path):
    """A store whose file another connection holds the write lock of (a CLI command, a
    second endpoint on the same DATA_DIR)."""
    store = SQLiteStore(tmp_path / "s.sqlite3", busy_timeout_s=0.2)
    store.add_device(DEVICE, SECRET, 1)
    other = sqlite3.connect(tmp_path / "s.sqlite3", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    yield store, other
    other.close()


def test_locked_sqlite_is_a_signed_503(locked_sqlite):
    store, other = locked_sqlite
    event = post_event(body_of([reading(1)]))
    check_busy(*handle(store, event), event["headers"]["x-signature"])
    other.execute("ROLLBACK")
    # "nothing was stored" is exact: the readings and the row's counters are one commit.
    assert store.query_readings(DEVICE)[0] == [] and store.get_device(DEVICE)["received"] == 0
    status, _, body = handle(store, event)
    assert (status, json.loads(body)["accepted"]) == (200, 1)


def test_local_endpoint_on_locked_sqlite_answers_503_over_http(locked_sqlite, tmp_path):
    store, other = locked_sqlite
    with LocalEndpoint(tmp_path / "ep", store=store, read_token="t") as endpoint:
        answer, request_signature = post_http(endpoint, [reading(1)])
        check_busy(answer.status_code, answer.headers, answer.content, request_signature)
        other.execute("ROLLBACK")
        assert post_http(endpoint, [reading(1)])[0].json()["accepted"] == 1


def test_a_throttled_read_is_a_503(dynamodb):
    from cloud import read_api
    from cloud.protocol import token_sha256
    from tests.cloud.helpers import get_event

    fail(dynamodb.db, "Query", "ThrottlingException")
    answer = read_api.handle(get_event("/data/latest", device_id=DEVICE), dynamodb, token_sha256("read-token"))
    assert (answer["statusCode"], answer["headers"]["Retry-After"]) == (503, "5")
    assert json.loads(answer["body"])["error"] == "store_busy"


def test_a_last_attempt_that_finds_only_duplicates_is_success(dynamodb):
    event = post_event(body_of([reading(1), reading(2)]))
    assert handle(dynamodb, event)[0] == 200
    why = [{"Code": "TransactionConflict"}, {"Code": "None"}, {"Code": "None"}]
    left = fail(dynamodb.db, "TransactWriteItems", "TransactionCanceledException", WRITE_ATTEMPTS - 1, why)
    status, _, body = handle(dynamodb, event)  # the real last attempt: both conditions fail, both duplicates
    assert left == [0] and (status, json.loads(body)["duplicates"]) == (200, 2)
