"""`dhtlink node`, `node status` and `node install-service` through the real CLI."""

import json
import os
import re
import shutil
import subprocess
import time

import pytest

from host_tools.cli import main
from host_tools.errors import UsageError
from host_tools.node.command import read_secret
from host_tools.node.spool import Spool

SECRET = "0123456789abcdef" * 4


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "pi-01.secret"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return path


def node_args(secret_file, *extra):
    return ["node", "--device-id", "pi-01", "--secret-file", str(secret_file),
            "--endpoint", "http://127.0.0.1:8080/data", *extra]  # fmt: skip


def test_secret_file_readable_by_others_is_refused(secret_file, capsys):
    secret_file.chmod(0o644)
    assert main(node_args(secret_file)) == 2
    err = capsys.readouterr().err
    assert f"chmod 600 {secret_file}" in err and "mode 644" in err
    assert SECRET not in err


def test_secret_file_forms(tmp_path, secret_file):
    assert read_secret(secret_file, "pi-01") == SECRET
    as_json = tmp_path / "added.json"
    as_json.write_text(json.dumps({"device_id": "pi-01", "secret": SECRET}))
    as_json.chmod(0o600)
    assert read_secret(as_json, "pi-01") == SECRET
    with pytest.raises(UsageError, match="for device 'pi-01', not 'pi-02'"):
        read_secret(as_json, "pi-02")
    bad = tmp_path / "bad"
    bad.write_text("WIFI-PASSWORD-NOT-A-SECRET")
    bad.chmod(0o600)
    with pytest.raises(UsageError, match="64 lowercase hex") as error:
        read_secret(bad, "pi-01")
    assert "WIFI" not in str(error.value)
    with pytest.raises(UsageError, match="No such file"):
        read_secret(tmp_path / "missing", "pi-01")


def test_no_secret_option_on_the_command_line(capsys):
    # Not an abbreviation of --secret-file: refused by argparse before anything runs.
    with pytest.raises(SystemExit) as exit_:
        main(["node", "--device-id", "pi-01", "--secret", SECRET])
    assert exit_.value.code == 2
    capsys.readouterr()
    assert main(["node", "--device-id", "pi-01", "--secret-file", SECRET, "--endpoint", "http://h/data"]) == 2
    err = capsys.readouterr().err
    assert "not the secret itself" in err and SECRET not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--pin", "4;"], "--pin must be a board pin name such as D4"),  # a bare 4 is GPIO 4: D4
        (["--sensor", "AM2320"], "--sensor must be DHT22 or DHT11"),
        (["--interval", "1"], "--interval must be from 2"),
        (["--batch-size", "101"], "--batch-size must be from 1 to 100"),
        (["--endpoint", "ftp://x/data"], "--endpoint must be an http"),
        (["--device-id", "pi 01"], "--device must be"),
    ],
)
def test_options_are_checked_up_front(secret_file, capsys, extra, message):
    assert main(node_args(secret_file, *extra)) == 2
    assert message in capsys.readouterr().err


def test_no_gpio_pin_here_is_a_clear_error(secret_file, tmp_path, capsys):
    # This host: Blinka loads, but knows no D4.
    assert main(node_args(secret_file, "--state-dir", str(tmp_path / "state"))) == 2
    assert "--pin D4: this board has no such pin" in capsys.readouterr().err
    # The GPIO number, as `provision --pin` takes it, is the same pin.
    assert main(node_args(secret_file, "--pin", "4", "--state-dir", str(tmp_path / "state"))) == 2
    assert "--pin D4: this board has no such pin" in capsys.readouterr().err


def test_unwritable_state_dir(secret_file, tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert main(node_args(secret_file, "--state-dir", str(blocked / "sub"))) == 1
    assert "--state-dir" in capsys.readouterr().err


def test_status_shows_depth_last_send_and_last_error(tmp_path, capsys):
    spool = Spool(tmp_path)
    for i in range(3):
        spool.append(1_800_000_000 + i, 214, 452)
    now = int(time.time())
    spool.note(device_id="pi-01", last_send="sent 20 readings, seq 0-19", last_send_at=now - 30)
    spool.note(last_error="receiver answered 503, 3 readings kept", last_error_at=now - 5)
    spool.count("sensor_errors", 2)
    assert main(["node", "status", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "spool depth    3 unsent" in out
    assert "sent 20 readings, seq 0-19" in out and re.search(r"\(3[01] s ago\)", out)
    assert "receiver answered 503" in out
    assert "sensor_errors=2" in out
    assert main(["node", "status", "--state-dir", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["spool_depth"] == 3 and data["next_seq"] == 3 and data["device_id"] == "pi-01"
    spool.close()


def test_status_of_a_missing_node(tmp_path, capsys):
    assert main(["node", "status", "--state-dir", str(tmp_path)]) == 1
    assert "no node spool" in capsys.readouterr().err


def test_install_service_writes_a_unit(secret_file, tmp_path, capsys):
    args = node_args(secret_file, "--pin", "D17", "--interval", "30")
    args[1:1] = ["install-service", "--unit-dir", str(tmp_path), "--user", "nobody"]
    assert main(args) == 0
    out = capsys.readouterr()
    unit = (tmp_path / "dhtlink-node.service").read_text()
    assert "Restart=on-failure" in unit
    assert "User=nobody" in unit and "SupplementaryGroups=gpio" in unit
    assert f"LoadCredential=secret:{secret_file}" in unit
    assert "--secret-file %d/secret" in unit and "--pin D17 --interval 30" in unit
    assert SECRET not in unit
    assert "systemctl enable --now dhtlink-node" in out.out
    assert "nobody is not in the gpio group" in out.err or "no 'gpio' group" in out.err
    assert oct(os.stat(tmp_path / "dhtlink-node.service").st_mode & 0o777) == "0o644"


def test_install_service_refuses_root_and_bad_secret_files(secret_file, tmp_path, capsys):
    args = node_args(secret_file)
    args[1:1] = ["install-service", "--unit-dir", str(tmp_path), "--user", "root"]
    assert main(args) == 2
    assert "--user must not be root" in capsys.readouterr().err
    secret_file.chmod(0o640)
    args[args.index("root")] = "dhtlink"
    assert main(args) == 2
    assert "chmod 600" in capsys.readouterr().err
    assert not (tmp_path / "dhtlink-node.service").exists()


def test_install_service_print(secret_file, capsys):
    args = node_args(secret_file)
    args[1:1] = ["install-service", "--print"]
    assert main(args) == 0
    assert capsys.readouterr().out.startswith("# Written by `dhtlink node install-service`")


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed here")
def test_the_unit_passes_systemd_analyze_verify(secret_file, tmp_path):
    args = node_args(secret_file)
    args[1:1] = ["install-service", "--unit-dir", str(tmp_path), "--user", "daemon"]
    assert main(args) == 0
    done = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "dhtlink-node.service")], capture_output=True, text=True
    )
    assert done.returncode == 0 and not done.stderr, done.stderr


@pytest.mark.parametrize("typed", ["http://10.0.0.2:8080", "http://10.0.0.2:8080/data"])
def test_the_endpoint_is_the_base_url_as_everywhere_and_data_is_added(secret_file, typed):
    from host_tools import cli
    from host_tools.node.command import node_config

    argv = ["node", "--device", "pi-01", "--secret-file", str(secret_file), "--endpoint", typed]
    assert node_config(cli.build_parser().parse_args(argv)).endpoint == "http://10.0.0.2:8080/data"


def test_where_the_spool_lives(secret_file, tmp_path, monkeypatch):
    from pathlib import Path

    from host_tools import cli
    from host_tools.node.command import node_config

    def state_dir(*extra):
        return node_config(cli.build_parser().parse_args(node_args(secret_file, *extra))).state_dir

    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    assert state_dir() == Path("/var/lib/dhtlink-node")
    assert state_dir("--simulate") == Path(".dhtlink/nodes/pi-01")  # beside `dhtlink serve`'s data
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))  # systemd's StateDirectory=
    assert state_dir("--simulate") == tmp_path
    assert state_dir("--state-dir", "elsewhere") == Path("elsewhere")
