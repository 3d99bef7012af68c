"""Remote settings in the registry (every store), in the signed answer, in GET /devices and
in `dhtlink devices set|list` (local and --aws)."""

import json
import sqlite3

import boto3
import pytest
from moto import mock_aws

from cloud import ingest, read_api, signing
from cloud.protocol import token_sha256
from cloud.stores.base import NoSuchDevice, public_device
from cloud.stores.dynamodb import create_tables
from cloud.stores.sqlite import SQLiteStore
from host_tools.cli import main
from tests.cloud.helpers import DEVICE, SECRET, body_of, get_event, post_event, reading
from tests.cloud.test_devices_aws import OUTPUTS_ONLY


def test_desired_settings_merge_version_and_unset(store):
    store.add_device(DEVICE, SECRET, 1)
    row = store.get_device(DEVICE)
    assert (row["desired"], row["desired_version"]) == (None, 0)
    assert store.set_desired(DEVICE, {"interval_s": 300}) == (1, {"interval_s": 300})
    assert store.set_desired(DEVICE, {"batch_size": 30, "sensor.pin": 15}) == (
        2,
        {"interval_s": 300, "batch_size": 30, "sensor.pin": 15},
    )
    assert store.set_desired(DEVICE, {"interval_s": None}) == (3, {"batch_size": 30, "sensor.pin": 15})
    row = store.get_device(DEVICE)
    assert (row["desired"], row["desired_version"]) == ({"batch_size": 30, "sensor.pin": 15}, 3)
    assert store.list_devices()[0]["desired_version"] == 3
    with pytest.raises(NoSuchDevice):
        store.set_desired("nobody", {"interval_s": 60})


def post(store, status, now):
    body = body_of([reading(1, ts=int(now) - 60)], status=status)
    event = post_event(body, timestamp=int(now))
    answer = ingest.handle(event, store, now, 86400 * 30)
    request_signature = event["headers"]["x-signature"]
    assert signing.verify_answer(
        SECRET, request_signature, answer["statusCode"], answer["body"].encode(), answer["headers"]["X-Signature"]
    ), "the settings are signed with the rest of the answer"
    return json.loads(answer["body"])


def test_the_signed_answer_offers_settings_until_the_board_runs_or_refuses_them(store):
    import time

    now = time.time()
    store.add_device(DEVICE, SECRET, 1)
    assert "settings" not in post(store, {"cfg_v": 0}, now), "nothing desired, nothing offered"
    store.set_desired(DEVICE, {"interval_s": 300})
    assert post(store, {"cfg_v": 0}, now)["settings"] == {"v": 1, "interval_s": 300}
    assert post(store, None, now)["settings"] == {"v": 1, "interval_s": 300}, "a board reporting no status"
    assert "settings" not in post(store, {"cfg_v": 1}, now)
    store.set_desired(DEVICE, {"batch_size": 500})
    answer = post(store, {"cfg_v": 1, "cfg_refused": 2, "cfg_error": "batch_size: must be ..."}, now)
    assert "settings" not in answer, "a refused version is not offered again"
    shadow = public_device(store.get_device(DEVICE))["settings"]
    assert shadow == {
        "desired": {"interval_s": 300, "batch_size": 500},
        "desired_version": 2,
        "reported_version": 1,
        "in_sync": False,
        "refused_version": 2,
        "refused_because": "batch_size: must be ...",
    }


def test_read_api_shows_desired_beside_reported(store):
    store.add_device(DEVICE, SECRET, 1)
    store.set_desired(DEVICE, {"mode": "always_on"})
    answer = read_api.handle(get_event("/devices"), store, token_sha256("read-token"))
    device = json.loads(answer["body"])["devices"][0]
    assert device["settings"]["desired"] == {"mode": "always_on"} and device["settings"]["in_sync"] is False
    assert SECRET not in answer["body"]


def test_an_older_sqlite_store_gains_the_columns_and_keeps_its_devices(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE devices (device_id TEXT PRIMARY KEY, secret TEXT NOT NULL, created_at INTEGER NOT NULL,"
        " last_seen INTEGER, last_status TEXT, last_reading TEXT, first_seq INTEGER, max_seq INTEGER,"
        " received INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute("INSERT INTO devices (device_id, secret, created_at) VALUES (?, ?, 1)", (DEVICE, SECRET))
    db.commit()
    db.close()
    store = SQLiteStore(path)
    assert store.get_device(DEVICE)["secret"] == SECRET
    assert store.set_desired(DEVICE, {"interval_s": 90})[0] == 1


def test_devices_set_and_list_locally(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    assert main(["devices", "add", "attic"]) == 0
    assert main(["devices", "set", "attic", "--interval", "300", "--batch-size", "30", "--sensor", "dht11"]) == 0
    out = capsys.readouterr().out
    assert "desired settings v1: batch_size=30, interval_s=300, sensor.type=DHT11" in out
    assert main(["devices", "list"]) == 0
    assert "settings v1 pending (board runs v0)" in capsys.readouterr().out
    assert main(["devices", "set", "attic", "--interval", "1"]) == 2
    assert "--interval must be from 2s to 1d, got 1 (a bare number is seconds)" in capsys.readouterr().err
    assert main(["devices", "set", "attic"]) == 2
    assert "nothing to set" in capsys.readouterr().err
    assert main(["devices", "set", "nobody", "--pin", "5"]) == 1
    assert "no device nobody" in capsys.readouterr().err


def test_devices_set_against_a_deployed_stack(aws_env, capsys):
    with mock_aws():
        create_tables(boto3.client("dynamodb"), "stack-readings", "stack-devices")
        boto3.client("cloudformation").create_stack(StackName="dhtlink", TemplateBody=json.dumps(OUTPUTS_ONLY))
        assert main(["devices", "add", "cellar-1", "--aws"]) == 0
        assert main(["devices", "set", "cellar-1", "--interval", "600", "--aws"]) == 0
        assert main(["devices", "set", "cellar-1", "--mode", "always_on", "--aws"]) == 0
        assert "desired settings v2: interval_s=600, mode=always_on" in capsys.readouterr().out
        item = boto3.client("dynamodb").get_item(TableName="stack-devices", Key={"device_id": {"S": "cellar-1"}})
        assert json.loads(item["Item"]["desired"]["S"]) == {"interval_s": 600, "mode": "always_on"}


def test_devices_set_names_a_device_and_its_room(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    assert main(["devices", "add", "attic"]) == 0
    assert main(["devices", "set", "attic", "--name", "  Attic north ", "--room", "Attic"]) == 0
    assert "attic: name='Attic north', room='Attic'" in capsys.readouterr().out
    assert main(["devices", "list"]) == 0
    listing = capsys.readouterr().out
    assert "(Attic north · Attic)" in listing and "settings=as provisioned" in listing, "labels are no settings"
    assert main(["devices", "set", "attic", "--room", "", "--interval", "120"]) == 0
    out = capsys.readouterr().out
    assert "room cleared" in out and "desired settings v1: interval_s=120" in out
    assert main(["devices", "set", "attic", "--name", "x" * 65]) == 2
    assert "name is 65 characters: at most 64" in capsys.readouterr().err
    assert main(["devices", "set", "attic", "--name", "bell\a"]) == 2
    assert "control character" in capsys.readouterr().err
    assert main(["devices", "list", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["name"], row["room"]) == ("Attic north", "")


def test_devices_set_names_a_device_on_a_deployed_stack(aws_env, capsys):
    with mock_aws():
        create_tables(boto3.client("dynamodb"), "stack-readings", "stack-devices")
        boto3.client("cloudformation").create_stack(StackName="dhtlink", TemplateBody=json.dumps(OUTPUTS_ONLY))
        assert main(["devices", "add", "cellar-1", "--aws"]) == 0
        assert main(["devices", "set", "cellar-1", "--name", "Cellar", "--room", "Basement", "--aws"]) == 0
        assert main(["devices", "set", "cellar-1", "--room", "", "--aws"]) == 0
        item = boto3.client("dynamodb").get_item(TableName="stack-devices", Key={"device_id": {"S": "cellar-1"}})
        assert item["Item"]["name"]["S"] == "Cellar" and "room" not in item["Item"]
        assert main(["devices", "set", "nobody", "--name", "x", "--aws"]) == 1
