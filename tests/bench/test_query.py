import json
import time

import pytest

from cloud import signing
from host_tools.cli import main


@pytest.fixture
def filled(endpoint):
    import requests

    secret = endpoint.add_device("attic")
    now = int(time.time())
    readings = [{"seq": i, "ts": now - 3000 + i * 60, "t": 20.0 + i / 10, "h": 50.0} for i in range(45)]
    for start in range(0, 45, 15):
        body = json.dumps({"device_id": "attic", "readings": readings[start : start + 15]}).encode()
        headers = signing.signed_headers(secret, "attic", now, "/data", body)
        assert requests.post(endpoint.url + "/data", data=body, headers=headers, timeout=5).ok
    return endpoint, now


def test_latest_table(filled, capsys, tmp_path):
    endpoint, _ = filled
    (tmp_path / "token").write_text(endpoint.read_token + "\n")
    argv = ["query", "latest", "--device", "attic", "--endpoint", endpoint.url, "--token-file", str(tmp_path / "token")]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["SEQ", "MEASURED", "T", "C", "H", "%"]
    assert out[1].split()[0] == "44" and "24.4" in out[1]


def test_range_follows_cursors_up_to_the_limit(filled, capsys, monkeypatch):
    endpoint, now = filled
    monkeypatch.setenv("READ_TOKEN", endpoint.read_token)
    assert (
        main(
            [
                "query",
                "range",
                "--device",
                "attic",
                "--endpoint",
                endpoint.url + "/data",  # what boards POST to works too
                "--json",
                "--limit",
                "40",
                "--from",
                str(now - 3000 + 60),
            ]
        )
        == 0
    )
    items = json.loads(capsys.readouterr().out)
    assert [i["seq"] for i in items] == list(range(44, 4, -1))


def test_range_takes_iso_times_as_utc_or_with_their_zone(filled, capsys, monkeypatch):
    import datetime as dt

    endpoint, now = filled
    monkeypatch.setenv("READ_TOKEN", endpoint.read_token)
    first, last = now - 3000 + 60, now - 3000 + 120  # seqs 1 and 2
    iso = dt.datetime.fromtimestamp(first, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    in_berlin = dt.datetime.fromtimestamp(last, dt.timezone(dt.timedelta(hours=1))).isoformat()
    argv = ["query", "range", "--device", "attic", "--endpoint", endpoint.url, "--json"]
    assert main([*argv, "--from", iso, "--to", in_berlin]) == 0
    assert [i["seq"] for i in json.loads(capsys.readouterr().out)] == [2, 1]
    assert main([*argv, "--from", "yesterday"]) == 2
    err = capsys.readouterr().err
    assert "--from must be a time: ISO 8601" in err and "Traceback" not in err


def test_a_token_on_the_command_line_is_refused_without_echo(filled, capsys):
    endpoint, _ = filled
    assert main(["query", "devices", "--endpoint", endpoint.url, "--token", endpoint.read_token]) == 2
    err = capsys.readouterr().err
    assert "--token-file" in err and endpoint.read_token not in err


def test_devices_from_the_local_token_file(filled, capsys, monkeypatch):
    endpoint, _ = filled
    monkeypatch.setenv("DATA_DIR", str(endpoint.data_dir))
    monkeypatch.delenv("READ_TOKEN", raising=False)
    (endpoint.data_dir / "read-token").write_text(endpoint.read_token + "\n")
    assert main(["query", "devices", "--url", endpoint.url]) == 0  # --url: the old spelling, unlisted
    out = capsys.readouterr().out
    assert "attic" in out and "45" in out


def test_data_dir_option_names_the_token_file(filled, capsys, monkeypatch, tmp_path):
    endpoint, _ = filled
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("READ_TOKEN", raising=False)
    (endpoint.data_dir / "read-token").write_text(endpoint.read_token + "\n")
    argv = ["query", "devices", "--endpoint", endpoint.url, "--data-dir", str(endpoint.data_dir), "--json"]
    assert main(argv) == 0
    assert [d["device_id"] for d in json.loads(capsys.readouterr().out)] == ["attic"]


@pytest.mark.parametrize(
    ("args", "status", "needle"),
    [
        (["devices"], 1, "refused the read token"),
        (["latest", "--device", "nobody"], 1, "404 not_found"),
    ],
)
def test_errors(filled, capsys, monkeypatch, args, status, needle):
    endpoint, _ = filled
    monkeypatch.setenv("READ_TOKEN", "wrong" if args == ["devices"] else endpoint.read_token)
    assert main(["query", *args, "--endpoint", endpoint.url]) == status
    assert needle in capsys.readouterr().err


def test_connection_refused(capsys, monkeypatch):
    monkeypatch.setenv("READ_TOKEN", "t")
    assert main(["query", "devices", "--endpoint", "http://127.0.0.1:9"]) == 1
    assert "cannot reach" in capsys.readouterr().err
