"""What a newcomer runs into in the first hour (issue 27): an endpoint a board can never reach,
a virtual board's folder that is not one, a probe that looked like a problem in the log."""

import io
import json
import os
import pty
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools.cli import main
from host_tools.cli.provision import check_reachable
from host_tools.errors import UsageError

DHTLINK = str(Path(sys.executable).parent / "dhtlink")


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("http://0.0.0.0:8080", "0.0.0.0 is the address a server listens on"),
        ("http://localhost:8080", "localhost names this computer itself"),
        ("http://127.0.0.1:9000", "127.0.0.1 is this computer's loopback address"),
        ("http://127.1.2.3:9000", "127.1.2.3 is this computer's loopback address"),
        ("http://[::1]:9000", "::1 is this computer's loopback address"),
    ],
)
def test_a_board_on_a_cable_is_never_given_an_address_it_cannot_reach(endpoint, why):
    with pytest.raises(UsageError) as refused:
        check_reachable(endpoint, "/dev/ttyUSB0")
    message = str(refused.value)
    assert why in message and "LAN address" in message and "dhtlink serve --host 0.0.0.0" in message


def test_a_virtual_board_shares_this_computers_loopback_but_not_0_0_0_0():
    leader, follower = pty.openpty()
    try:
        terminal = os.ttyname(follower)
        check_reachable("http://127.0.0.1:8080", terminal)
        check_reachable("http://localhost:8080", terminal)
        with pytest.raises(UsageError, match="0.0.0.0 is the address a server listens on"):
            check_reachable("http://0.0.0.0:8080", terminal)
    finally:
        os.close(leader)
        os.close(follower)
    for reachable in ("http://192.168.1.20:8080", "https://abc.execute-api.eu-west-1.amazonaws.com"):
        check_reachable(reachable, "/dev/ttyUSB0")


def test_provision_refuses_before_touching_a_board(capsys, monkeypatch):
    # /dev/null stands for a board's port that is no pseudo-terminal: opening it as a board would hang.
    argv = ["provision", "-p", "/dev/null", "--device", "d1", "--endpoint", "http://127.0.0.1:8080"]
    monkeypatch.setenv("DHTLINK_WIFI_PASSWORD", "pw")
    assert main([*argv, "--wifi-ssid", "home"]) == 2
    err = capsys.readouterr().err
    assert "127.0.0.1 is this computer's loopback address, which a board on Wi-Fi cannot reach" in err


@pytest.mark.parametrize("kind", ["a file", "under a file"])
def test_a_bad_vboard_dir_is_one_line(tmp_path, kind):
    a_file = tmp_path / "file"
    a_file.write_text("")
    chosen = a_file if kind == "a file" else a_file / "board"
    done = subprocess.run([DHTLINK, "vboard", "--dir", str(chosen)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and f"--dir {chosen}" in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def test_a_vboard_dir_is_created_for_its_owner_only(tmp_path):
    from host_tools.cli.vboard import board_dir

    created = board_dir(tmp_path / "myboard")
    assert stat.S_IMODE(created.stat().st_mode) == 0o700


def test_the_provisioning_probe_is_an_info_line_and_a_bad_batch_still_a_warning(tmp_path):
    import time

    from cloud import observability, signing
    from cloud.local import LocalEndpoint
    from host_tools.serial.provision import probe

    lines = io.StringIO()
    observability.set_output(lines)
    try:
        with LocalEndpoint(tmp_path) as endpoint:
            secret = endpoint.add_device("d1")
            probe(endpoint.url + "/data", "d1", secret)
            body = json.dumps({"device_id": "d1", "readings": [{"seq": 0}]}).encode()
            headers = signing.signed_headers(secret, "d1", int(time.time()), "/data", body)
            import requests

            assert requests.post(endpoint.url + "/data", data=body, headers=headers, timeout=5).status_code == 400
    finally:
        observability.set_output(None)
    records = [json.loads(line) for line in lines.getvalue().splitlines() if line.startswith("{")]
    posts = [r for r in records if r.get("route") == "POST /data"]
    assert [(r["level"], r["message"]) for r in posts if r.get("status") == 400] == [
        ("INFO", "provisioning probe answered"),
        ("WARNING", "request rejected"),
    ]


def test_make_provision_again_passes_only_what_it_is_given():
    """A second `make provision` changes what it names and keeps the rest: no `--device ""`."""
    printed = subprocess.run(
        ["make", "-s", "-n", "-C", str(Path(__file__).resolve().parents[2]), "provision", "WIFI_SSID=new"],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k not in ("DEVICE_ID", "ENDPOINT", "PORT")},
    ).stdout
    (command,) = [line for line in printed.replace("\\\n", " ").splitlines() if "dhtlink provision" in line]
    assert shlex.split(command)[1:] == ["provision", "--wifi-ssid", "new"]


def test_devices_list_prints_dates_as_query_devices_does(tmp_path, capsys, monkeypatch):
    import time

    import requests

    from cloud import observability, signing
    from cloud.local import LocalEndpoint

    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    observability.set_output(io.StringIO())
    try:
        with LocalEndpoint(tmp_path) as endpoint:
            secret = endpoint.add_device("d1")
            endpoint.add_device("d2")
            now = int(time.time())
            body = json.dumps({"device_id": "d1", "readings": [{"seq": 0, "ts": now, "t": 20, "h": 50}]}).encode()
            headers = signing.signed_headers(secret, "d1", now, "/data", body)
            assert requests.post(endpoint.url + "/data", data=body, headers=headers, timeout=5).ok
    finally:
        observability.set_output(None)
    assert main(["devices", "list"]) == 0
    rows = dict(line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines())
    assert rows["d2"].startswith("last seen - ")
    assert time.strftime("last seen %Y-%m-%d ", time.gmtime(now)) in rows["d1"] and "Z " in rows["d1"]
