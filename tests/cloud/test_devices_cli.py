import json
import subprocess
import sys
from pathlib import Path

import pytest

from host_tools.cli import main


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def test_add_list_rotate_remove(capsys):
    assert main(["devices", "add", "attic", "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["device_id"] == "attic" and len(added["secret"]) == 64
    assert main(["devices", "list"]) == 0
    listing = capsys.readouterr().out
    assert "attic" in listing and added["secret"] not in listing
    assert main(["devices", "rotate", "attic", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["secret"] != added["secret"]
    assert main(["devices", "remove", "attic"]) == 0
    assert main(["devices", "remove", "attic"]) == 1
    assert "no device attic" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["has space", "x" * 65, "", "ünïcode"])
def test_invalid_ids_are_refused(capsys, bad):
    assert main(["devices", "add", bad]) == 2
    assert "1-64 characters" in capsys.readouterr().err


def test_duplicate_add_is_refused(capsys):
    assert main(["devices", "add", "attic"]) == 0
    secret_line = capsys.readouterr().out
    assert main(["devices", "add", "attic"]) == 1
    err = capsys.readouterr().err
    assert "already registered" in err and secret_line.split()[-1] not in err


def test_console_script(data_dir):
    dhtlink = str(Path(sys.executable).parent / "dhtlink")
    done = subprocess.run([dhtlink, "devices", "add", "bad id"], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
