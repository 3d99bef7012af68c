"""DynamoDB calls per 20-reading batch (new, mixed, conflicting), counted on the client:
the target is at most 4."""

import json
import time

import boto3
from moto import mock_aws

from cloud import ingest
from cloud.protocol import token_sha256
from cloud.stores.dynamodb import DynamoDBStore, create_tables
from tests.cloud.helpers import DEVICE, SECRET, body_of, post_event, reading


def test_a_batch_costs_at_most_three_calls(aws_env):
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client, "readings", "devices")
        store = DynamoDBStore("readings", "devices", client)
        store.add_device(DEVICE, SECRET, 1)
        calls = []
        client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
        now = int(time.time())
        batch = body_of([reading(seq, ts=now - 100 + seq) for seq in range(20)])
        first = ingest.handle(post_event(batch), store, now, 86400 * 400)
        assert json.loads(first["body"])["accepted"] == 20
        # The device row's update rides in the readings' transaction.
        assert calls == ["GetItem", "TransactWriteItems"]
        calls.clear()
        overlap = body_of([reading(seq, ts=now - 100 + seq) for seq in range(10, 30)])
        second = json.loads(ingest.handle(post_event(overlap), store, now, 86400 * 400)["body"])
        assert (second["accepted"], second["duplicates"]) == (10, 10)
        assert calls == ["GetItem", "TransactWriteItems", "TransactWriteItems"]
        calls.clear()
        # A board whose counter restarted: the stored items come back with the cancelled
        # transaction (ReturnValuesOnConditionCheckFailure), so the only extra call is the
        # Query for next_seq, and there is no device row update.
        restarted = body_of([reading(seq, ts=now - 5, t=30.0) for seq in range(5)])
        third = ingest.handle(post_event(restarted), store, now, 86400 * 400)
        assert (third["statusCode"], json.loads(third["body"])["next_seq"]) == (409, 30)
        assert calls == ["GetItem", "TransactWriteItems", "Query"]


def test_lambda_entry_points_use_the_environment(aws_env, monkeypatch):
    from cloud import read_api, settings
    from tests.cloud.helpers import get_event

    monkeypatch.setenv("READINGS_TABLE", "r")
    monkeypatch.setenv("DEVICES_TABLE", "d")
    monkeypatch.setenv("READ_TOKEN_SHA256", token_sha256("read-token"))
    settings.lambda_store.cache_clear()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_tables(client, "r", "d")
        DynamoDBStore("r", "d", client).add_device(DEVICE, SECRET, 1)
        now = int(time.time())
        answer = ingest.handler(post_event(body_of([reading(1, ts=now - 5)])), None)
        assert answer["statusCode"] == 200 and json.loads(answer["body"])["accepted"] == 1
        latest = read_api.handler(get_event("/data/latest", device_id=DEVICE), None)
        assert json.loads(latest["body"])["seq"] == 1
    settings.lambda_store.cache_clear()
