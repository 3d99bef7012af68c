"""Throttling as DynamoDB sends it, on the wire: an HTTP 400 with the error's __type in the
body, put in place of the server's answer on the store's own client (botocore's before-send
hook), so botocore's retry handling runs as it does against AWS, over HTTP to moto's server.

Each case ends in a 200 after a retry inside the handler, or in a signed 503 with
Retry-After that the board retries; never a lost reading, never a 500, and always before the
board's own timeout (device/transport.py) would turn the answer into a guess."""

import json
import time

import pytest
import requests
from botocore.awsrequest import AWSResponse

from cloud import ingest, signing
from cloud.local import LocalEndpoint
from cloud.stores.dynamodb import DynamoDBStore, create_tables
from tests.cloud.helpers import DEVICE, SECRET, body_of, post_event, reading
from tests.cloud.servers import moto_server, raw_client  # noqa: F401 - a fixture

RETENTION_S = 400 * 86400
BOARD_TIMEOUT_S = 5  # device/transport.py TIMEOUT_S
ANSWER_WITHIN_S = BOARD_TIMEOUT_S - 1  # and a second for the network and the board's parsing


class _Raw:
    def __init__(self, body):
        self.body = body

    def stream(self, **_):
        yield self.body


class WireFaults:
    """Answer the next `times` HTTP attempts of an operation with a DynamoDB error; count
    every attempt that reaches the wire, faulted or not."""

    def __init__(self, client):
        self.plan = {}
        self.attempts = []
        client.meta.events.register("before-send.dynamodb", self._before_send)

    def fail(self, operation, code, times=1, status=400, **extra):
        self.plan[operation] = [code, times, status, extra]

    def _before_send(self, request, **_):
        operation = request.headers["X-Amz-Target"].decode().split(".")[-1]
        self.attempts.append(operation)
        planned = self.plan.get(operation)
        if not planned or planned[1] == 0:
            return None
        planned[1] -= 1
        code, _, status, extra = planned
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "injected", **extra})
        return AWSResponse(request.url, status, {"x-amzn-ErrorType": code}, _Raw(body.encode()))


@pytest.fixture
def store(moto_server, request):  # noqa: F811
    db = moto_server.client()
    readings, devices = f"r-{request.node.name}"[:200], f"d-{request.node.name}"[:200]
    # Set-up with botocore's patient defaults: the store's 3 s read timeout and one retry made
    # CreateTable on a loaded host time out, land, and fail its retry with "already exists".
    create_tables(raw_client(moto_server.url), readings, devices)
    store = DynamoDBStore(readings, devices, db)
    store.add_device(DEVICE, SECRET, 1)
    return store


def handle(store, event):
    started = time.monotonic()
    answer = ingest.handle(event, store, time.time(), RETENTION_S)
    return answer, time.monotonic() - started


def stored_seqs(store):
    return sorted(item["seq"] for item in store.query_readings(DEVICE, limit=1000)[0])


def assert_busy(answer, event):
    assert answer["statusCode"] == 503 and answer["headers"]["Retry-After"] == str(ingest.RETRY_AFTER_S)
    body = answer["body"].encode()
    assert signing.verify_answer(SECRET, event["headers"]["x-signature"], 503, body, answer["headers"]["X-Signature"])


THROTTLES = ["ProvisionedThroughputExceededException", "RequestLimitExceeded", "ThrottlingException"]


@pytest.mark.parametrize("code", THROTTLES)
def test_one_throttled_write_is_retried_inside_the_handler(store, code):
    faults = WireFaults(store.db)
    faults.fail("TransactWriteItems", code)
    event = post_event(body_of([reading(1), reading(2)]))
    answer, took = handle(store, event)
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["accepted"] == 2
    assert faults.attempts == ["GetItem", "TransactWriteItems", "TransactWriteItems"]  # the row rides in it
    assert took < ANSWER_WITHIN_S and stored_seqs(store) == [1, 2]


@pytest.mark.parametrize("code", THROTTLES)
def test_a_write_throttled_past_its_retry_is_a_signed_503_and_the_resend_lands(store, code):
    faults = WireFaults(store.db)
    faults.fail("TransactWriteItems", code, times=1000)
    event = post_event(body_of([reading(1), reading(2)]))
    answer, took = handle(store, event)
    assert_busy(answer, event)
    assert took < ANSWER_WITHIN_S and stored_seqs(store) == []
    assert faults.attempts.count("TransactWriteItems") == 2, "one retry, then the board's turn"
    faults.fail("TransactWriteItems", code, times=0)
    assert handle(store, event)[0]["statusCode"] == 200 and stored_seqs(store) == [1, 2]


def test_every_call_throttled_once_still_answers_in_time(store):
    faults = WireFaults(store.db)
    for operation in ("GetItem", "TransactWriteItems"):  # every call a batch makes
        faults.fail(operation, "ProvisionedThroughputExceededException")
    answer, took = handle(store, post_event(body_of([reading(seq) for seq in range(20)])))
    assert answer["statusCode"] == 200 and took < ANSWER_WITHIN_S
    assert len(faults.attempts) == 4 and stored_seqs(store) == list(range(20))


def test_a_transaction_conflict_is_retried_then_answered_busy(store):
    faults = WireFaults(store.db)
    # One reason per item: the two readings, then the device row's update.
    conflict = {"CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}, {"Code": "None"}]}
    faults.fail("TransactWriteItems", "TransactionCanceledException", times=1, **conflict)
    event = post_event(body_of([reading(1), reading(2)]))
    assert handle(store, event)[0]["statusCode"] == 200 and stored_seqs(store) == [1, 2]

    faults.fail("TransactWriteItems", "TransactionCanceledException", times=1000, **conflict)
    event = post_event(body_of([reading(3), reading(4)]))
    answer, took = handle(store, event)
    assert_busy(answer, event)
    assert took < ANSWER_WITHIN_S and stored_seqs(store) == [1, 2]
    faults.fail("TransactWriteItems", "TransactionCanceledException", times=0)
    assert handle(store, event)[0]["statusCode"] == 200 and stored_seqs(store) == [1, 2, 3, 4]


def test_a_dynamodb_500_is_a_503_not_a_500(store):
    faults = WireFaults(store.db)
    faults.fail("TransactWriteItems", "InternalServerError", times=1000, status=500)
    event = post_event(body_of([reading(1)]))
    answer, took = handle(store, event)
    assert_busy(answer, event)
    assert took < ANSWER_WITHIN_S and faults.attempts.count("TransactWriteItems") == 2


def test_an_unreachable_dynamodb_is_a_503(store, moto_server):  # noqa: F811
    from cloud.stores.dynamodb import client
    from host_tools.dynamodb_server import LOCAL_SESSION
    from tests.cloud.test_serve_cli import free_port

    gone = DynamoDBStore(store.readings, store.devices, client(f"http://127.0.0.1:{free_port()}", **LOCAL_SESSION))
    answer, took = handle(gone, post_event(body_of([reading(1)])))
    assert answer["statusCode"] == 503 and "X-Signature" not in answer["headers"] and took < ANSWER_WITHIN_S


def test_throttled_over_http_through_the_local_endpoint(store, tmp_path):
    faults = WireFaults(store.db)
    faults.fail("TransactWriteItems", "RequestLimitExceeded", times=1000)
    with LocalEndpoint(tmp_path, store=store, read_token="t" * 32) as endpoint:
        body = body_of([reading(7)])
        headers = signing.signed_headers(SECRET, DEVICE, int(time.time()), "/data", body)
        answer = requests.post(endpoint.url + "/data", data=body, headers=headers, timeout=BOARD_TIMEOUT_S)
        assert answer.status_code == 503 and answer.headers["Retry-After"] == str(ingest.RETRY_AFTER_S)
        assert signing.verify_answer(SECRET, headers["X-Signature"], 503, answer.content, answer.headers["X-Signature"])
        faults.fail("TransactWriteItems", "RequestLimitExceeded", times=0)
        answer = requests.post(endpoint.url + "/data", data=body, headers=headers, timeout=BOARD_TIMEOUT_S)
        assert answer.status_code == 200 and stored_seqs(store) == [7]


def test_the_lambda_store_has_the_same_retry_budget(aws_env, monkeypatch):
    from cloud import settings
    from cloud.stores.dynamodb import CALL_ATTEMPTS

    monkeypatch.setenv("READINGS_TABLE", "r")
    monkeypatch.setenv("DEVICES_TABLE", "d")
    for made in (settings.lambda_store, settings.lambda_ingest_store):
        made.cache_clear()
        try:
            config = made()[1].db.meta.config
        finally:
            made.cache_clear()
        assert config.retries == {"mode": "standard", "total_max_attempts": CALL_ATTEMPTS}
        assert config.read_timeout < BOARD_TIMEOUT_S and config.connect_timeout < BOARD_TIMEOUT_S
