"""`dhtlink serve --store dynamodb` and `dhtlink devices` against a DynamoDB server over HTTP
(moto's server mode on 127.0.0.1): the same handlers over the DynamoDB store, and one line
when the tables are missing or are not the template's."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from cloud import signing
from cloud.stores.dynamodb import TablesMismatch, check_tables, create_tables, table_definitions
from host_tools.cli import main
from tests.cloud.helpers import body_of, reading
from tests.cloud.servers import moto_server  # noqa: F401 - a fixture
from tests.cloud.test_serve_cli import free_port

DHTLINK = str(Path(sys.executable).parent / "dhtlink")


def table_flags(server, readings="r", devices="d"):
    return ["--store", "dynamodb", "--dynamodb-endpoint", server.url, "--readings-table", readings] + [
        "--devices-table",
        devices,
    ]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--readings-table", "r"], "--readings-table needs --store dynamodb"),
        (["--store", "dynamodb", "--readings-table", "r"], "go together"),
        (["--store", "dynamodb", "--dynamodb-endpoint", "localhost:8000"], "must be a URL"),
        (["--store", "dynamodb", "--dynamodb-endpoint", "http://127.0.0.1:1"], "name the tables"),
        (["--store", "dynamodb", "--create-tables"], "only with --dynamodb-endpoint"),
        (["--store", "dynamodb", "--stack", "s", "--readings-table", "r", "--devices-table", "d"], "not both"),
    ],
)
def test_store_flag_errors_name_the_option(args, needle, capsys):
    assert main(["serve", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_missing_tables_are_one_line_naming_the_fix(moto_server, capsys):  # noqa: F811
    assert main(["devices", "list", *table_flags(moto_server, "absent-r", "absent-d")]) == 1
    err = capsys.readouterr().err
    assert "table absent-r does not exist" in err and "--create-tables" in err and err.count("\n") == 1


def test_tables_that_differ_from_the_template_are_refused(moto_server, capsys):  # noqa: F811
    db = moto_server.client()
    # A readings table keyed by time alone: every reading of a second would overwrite another.
    db.create_table(
        TableName="wrong-r",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "device_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "device_id", "KeyType": "HASH"}],
    )
    create_tables(db, "ok-r", "ok-d")
    assert main(["devices", "list", *table_flags(moto_server, "wrong-r", "ok-d")]) == 1
    err = capsys.readouterr().err
    assert "table wrong-r differs from cloud/template.yaml" in err
    assert "keys (device_id HASH), not (device_id HASH, seq RANGE)" in err and "no local index by_time" in err
    assert err.count("\n") == 1


def _definition(db, name, **changes):
    spec = table_definitions("x-r", "x-d")[name.replace("bad", "x")]
    spec.update(changes)
    db.create_table(TableName=name, **spec)


def test_each_difference_that_breaks_a_query_is_named(moto_server):  # noqa: F811
    db = moto_server.client()
    create_tables(db, "x-r", "x-d")
    by_id, by_last_seen = table_definitions("x-r", "x-d")["x-d"]["GlobalSecondaryIndexes"]
    keys_only = {**by_id, "Projection": {"ProjectionType": "KEYS_ONLY"}}
    _definition(db, "bad-d", GlobalSecondaryIndexes=[keys_only, by_last_seen])
    with pytest.raises(TablesMismatch, match="index by_id projects KEYS_ONLY, not INCLUDE"):
        check_tables(db, "x-r", "bad-d")
    db.delete_table(TableName="bad-d")
    short = {**by_last_seen, "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["last_seen"]}}
    _definition(db, "bad-d", GlobalSecondaryIndexes=[by_id, short])
    with pytest.raises(
        TablesMismatch,
        match="index by_last_seen does not project created_at, desired, desired_version, errors_at, first_seq",
    ):
        check_tables(db, "x-r", "bad-d")
    db.delete_table(TableName="bad-d")
    attributes = [
        a for a in table_definitions("x-r", "x-d")["x-d"]["AttributeDefinitions"] if a["AttributeName"] != "seen_key"
    ]
    _definition(db, "bad-d", GlobalSecondaryIndexes=[by_id], AttributeDefinitions=attributes)  # no by_last_seen
    with pytest.raises(TablesMismatch, match="no global index by_last_seen"):
        check_tables(db, "x-r", "bad-d")
    assert check_tables(db, "x-r", "x-d") == ["table x-r has no time to live on expires_at: readings will never expire"]


def test_devices_work_against_the_server(moto_server, capsys):  # noqa: F811
    flags = table_flags(moto_server, "dev-r", "dev-d")
    assert main(["devices", "add", "cellar-1", "--json", *flags, "--create-tables"]) == 0
    secret = json.loads(capsys.readouterr().out)["secret"]
    item = moto_server.client().get_item(TableName="dev-d", Key={"device_id": {"S": "cellar-1"}})["Item"]
    assert item["secret"]["S"] == secret
    assert main(["devices", "list", *flags]) == 0
    out = capsys.readouterr()
    assert "cellar-1" in out.out and secret not in out.out + out.err
    assert "time to live" not in out.err, "--create-tables sets the TTL the template sets"


def test_serve_stores_signed_posts_in_the_tables(moto_server, tmp_path, capsys):  # noqa: F811
    flags = table_flags(moto_server, "srv-r", "srv-d")
    assert main(["devices", "add", "greenhouse-01", "--json", *flags, "--create-tables"]) == 0
    secret = json.loads(capsys.readouterr().out)["secret"]
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "data"), "READ_TOKEN": "t" * 32}
    process = subprocess.Popen(
        [DHTLINK, "serve", "--listen", str(port), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        lines = [process.stdout.readline() for _ in range(6)]
        assert any("DynamoDB: tables srv-r and srv-d at " + moto_server.url in line for line in lines), lines
        url = f"http://127.0.0.1:{port}"
        now = int(time.time())
        body = body_of([reading(seq, ts=now - 60 + seq) for seq in range(5)])
        headers = signing.signed_headers(secret, "greenhouse-01", now, "/data", body)
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = requests.post(url + "/data", data=body, headers=headers, timeout=10)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert answer.status_code == 200 and answer.json()["accepted"] == 5
        assert signing.verify_answer(secret, headers["X-Signature"], 200, answer.content, answer.headers["X-Signature"])
        again = requests.post(url + "/data", data=body, headers=headers, timeout=10).json()
        assert (again["accepted"], again["duplicates"]) == (0, 5)
        listing = requests.get(url + "/devices", headers={"Authorization": "Bearer " + "t" * 32}, timeout=10).json()
        assert listing["devices"][0]["health"]["received"] == 5
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)
    items = moto_server.client().scan(TableName="srv-r")["Items"]
    readings = [item for item in items if item["device_id"]["S"] == "greenhouse-01"]
    assert sorted(int(item["seq"]["N"]) for item in readings) == [0, 1, 2, 3, 4]
    # The local receiver summarises the dashboard's hours and days itself (no stream function).
    assert {item["device_id"]["S"] for item in items} > {"greenhouse-01"}


def test_no_region_or_credentials_is_one_line_saying_what_to_set(monkeypatch, tmp_path, capsys):
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["devices", "list", "--store", "dynamodb", "--stack", "dhtlink"]) == 1
    err = capsys.readouterr().err
    assert "cannot use DynamoDB at AWS" in err and "AWS_PROFILE" in err and err.count("\n") == 1


def test_an_alerts_table_is_created_checked_and_used(moto_server, capsys):  # noqa: F811
    from host_tools.cli import build_parser
    from host_tools.store_options import open_store, store_choice

    flags = [*table_flags(moto_server, "al-r", "al-d"), "--alerts-table", "al-a", "--create-tables"]
    args = build_parser().parse_args(["devices", "list", *flags])
    store, warnings = open_store(store_choice(args), None)
    assert store.alerts == "al-a" and store.inline_summaries and not any("alert" in w for w in warnings)
    key = moto_server.client().describe_table(TableName="al-a")["Table"]["KeySchema"]
    assert [k["AttributeName"] for k in key] == ["pk", "sk"]
    assert main(["devices", "list", *table_flags(moto_server, "al-r", "al-d"), "--alerts-table", "al-a"]) == 0
    assert "alert" not in capsys.readouterr().err
    assert main(["devices", "list", *table_flags(moto_server, "al-r", "al-d")]) == 0
    assert "no alerts table: alert rules are off" in capsys.readouterr().err
