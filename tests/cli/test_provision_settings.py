"""`dhtlink provision` settings: checked before the board is touched, kept across
re-provisioning, and a kept identity continues after the highest seq the registry has seen."""

import importlib.util
import json
import ssl
import subprocess
import sys

import pytest
import requests

from cloud import signing
from host_tools import device_settings
from host_tools.cli import main
from tests.conftest import REPO


def device_config_module():
    """device/config.py under CPython: the board's own validator, to hold the host's limits to it."""
    spec = importlib.util.spec_from_file_location("board_config", REPO / "device" / "config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_settings_devices_set_takes_are_the_ones_a_board_takes_remotely():
    remote = {setting.key for setting in device_settings.SETTINGS if setting.remote}
    assert remote == set(device_config_module().REMOTE)


BASE = {"device_id": "d1", "secret": "0" * 64, "wifi": [{"ssid": "x"}], "endpoint": "http://h/data"}


@pytest.mark.parametrize(
    ("option", "good", "bad"),
    [
        ("--interval", ["2", "86400"], ["1", "86401", "ten"]),
        ("--batch-size", ["1", "100"], ["0", "101"]),
        ("--pin", ["0", "4", "33"], ["-1", "1", "6", "12", "20", "24", "34", "40", "48", "four"]),
        ("--max-batch-delay", ["0", str(7 * 86400)], ["-1", str(7 * 86400 + 1)]),
        ("--spool-max", ["10", "100000"], ["9", "100001"]),
        ("--sensor", ["DHT22", "dht11"], ["DHT21", ""]),
        ("--mode", ["deep_sleep", "always_on"], ["sleepy"]),
    ],
)
def test_host_limits_are_the_boards(option, good, bad):
    board = device_config_module()
    setting = next(s for s in device_settings.SETTINGS if s.option == option)
    for text in good:
        value = setting.parse(option, text)
        board.validate(device_settings.apply(dict(BASE), {setting.key: value}))
    for text in bad:
        with pytest.raises(device_settings.UsageError, match=option):
            setting.parse(option, text)


def test_pins_are_the_boards_and_every_other_pin_is_refused_by_both():
    board = device_config_module()
    assert board.DHT_PINS == device_settings.DHT_PINS and board.PIN_WHY == device_settings.PIN_WHY
    for pin in range(-1, 50):
        host_ok = True
        try:
            device_settings.dht_pin("--pin", str(pin))
        except device_settings.UsageError:
            host_ok = False
        assert host_ok == (board.pin_error(pin) is None), pin


def test_a_pin_the_chip_cannot_use_says_why(capsys):
    assert main(["devices", "set", "bench-01", "--pin", "24"]) == 2
    err = capsys.readouterr().err
    assert "GPIO 24 does not exist on an ESP32" in err and "use one of 0, 2, 4" in err
    assert main(["provision", "--port", "/dev/no-such-port", "--pin", "35"]) == 2
    assert "GPIO 35 is input-only" in capsys.readouterr().err


def test_aws_endpoints_get_their_root_ca_checked_by_default(tmp_path):
    from host_tools.serial import provision

    url = "https://abc123.execute-api.eu-west-1.amazonaws.com/data"
    der = provision.tls_ca(url, aws=True, given=None)
    assert der is not None and der[:1] == b"\x30" and b"Amazon Root CA 1" in der
    # It loads as the board loads it (tls_ca: DER for ssl's load_verify_locations).
    (tmp_path / "ca.der").write_bytes(der)
    code = (
        "import tls\nc = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)\n"
        "c.load_verify_locations(open('ca.der', 'rb').read())\nprint('ok')"
    )
    command = [sys.executable, "-m", "micropython_unix", "-c", code]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "ok", done.stderr
    assert provision.tls_ca(url, aws=True, given="none") is None
    assert provision.tls_ca(url, aws=False, given=None) is None  # the board keeps what it has
    assert provision.tls_ca("http://10.0.0.2:8080/data", aws=True, given=None) is None
    pem = tmp_path / "own.pem"
    pem.write_text(ssl.DER_cert_to_PEM_cert(der))
    assert provision.tls_ca("https://h/data", aws=False, given=str(pem)) == der
    (tmp_path / "junk.pem").write_text("hello")
    with pytest.raises(device_settings.UsageError, match="not a PEM or DER certificate"):
        provision.tls_ca("https://h/data", aws=False, given=str(tmp_path / "junk.pem"))
    with pytest.raises(device_settings.UsageError, match="goes with an https"):
        provision.tls_ca("http://h/data", aws=False, given=str(pem))


def test_bad_setting_is_named_before_any_board_is_opened(capsys):
    # The port does not exist: the option's error must come first.
    assert main(["provision", "--port", "/dev/no-such-port", "--interval", "1"]) == 2
    err = capsys.readouterr().err
    assert "--interval must be from 2s to 1d, got 1 (a bare number is seconds)" in err and "no-such-port" not in err


def post(endpoint, device_id, secret, seqs):
    import time

    now = int(time.time())
    body = json.dumps(
        {"device_id": device_id, "readings": [{"seq": s, "ts": now - 100 + s, "t": 20.0, "h": 50.0} for s in seqs]}
    ).encode()
    headers = signing.signed_headers(secret, device_id, now, "/data", body)
    assert requests.post(endpoint.url + "/data", data=body, headers=headers, timeout=5).status_code == 200


@pytest.mark.slow
def test_reprovision_keeps_settings_and_continues_seq(vboard, endpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(endpoint.data_dir))
    secret = endpoint.add_device("loft-2")
    post(endpoint, "loft-2", secret, [0, 1, 41])  # the registry has seen up to 41
    vboard.dir.mkdir(parents=True, exist_ok=True)
    hand_edited = {
        "device_id": "loft-2",
        "secret": secret,
        "wifi": [{"ssid": "attic", "password": "pw1"}],
        "endpoint": endpoint.url + "/data",
        "sensor": {"type": "DHT11", "pin": 15},
        "interval_s": 300,
    }
    (vboard.dir / "config.json").write_text(json.dumps(hand_edited))
    (vboard.dir / "spool.state").write_text(json.dumps({"gen": 0, "head": 0, "next_seq": 3, "dropped": 2}))

    assert main(["provision", "--port", vboard.port, "--batch-size", "30"]) == 0
    out = capsys.readouterr().out
    config = json.loads((vboard.dir / "config.json").read_text())
    assert config == {**hand_edited, "batch_size": 30}, "only the option given changed"
    assert "readings continue from seq 42" in out and secret not in out and "pw1" not in out
    state = json.loads((vboard.dir / "spool.state").read_text())
    assert state == {"gen": 0, "head": 0, "next_seq": 42, "dropped": 2}, "counters kept, seq raised"

    # Told to change the sensor only; a seq already past the registry's is never lowered.
    (vboard.dir / "spool.state").write_text(json.dumps({"gen": 0, "head": 0, "next_seq": 90, "dropped": 0}))
    assert main(["provision", "--port", vboard.port, "--sensor", "DHT22", "--pin", "5"]) == 0
    config = json.loads((vboard.dir / "config.json").read_text())
    assert config["sensor"] == {"type": "DHT22", "pin": 5} and config["interval_s"] == 300
    assert json.loads((vboard.dir / "spool.state").read_text())["next_seq"] == 90


@pytest.mark.slow
def test_erased_board_starts_after_the_registrys_seq(vboard, endpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(endpoint.data_dir))
    secret = endpoint.add_device("porch-3")
    post(endpoint, "porch-3", secret, [7])
    password = tmp_path / "pw"
    password.write_text("pw")
    args = ["provision", "--port", vboard.port, "--device", "porch-3", "--wifi-ssid", "home"]
    args += ["--wifi-password-file", str(password), "--endpoint", endpoint.url]
    assert main([*args, "--interval", "120", "--sensor", "DHT11"]) == 0
    config = json.loads((vboard.dir / "config.json").read_text())
    assert config["interval_s"] == 120 and config["sensor"] == {"type": "DHT11", "pin": 4}
    assert json.loads((vboard.dir / "spool.state").read_text())["next_seq"] == 8


def test_missing_identity_on_a_blank_board(vboard, capsys):
    assert main(["provision", "--port", vboard.port, "--interval", "30"]) == 2
    assert "--device is required: the board has no config.json" in capsys.readouterr().err
    assert not (vboard.dir / "config.json").exists()


@pytest.mark.slow
def test_a_setting_given_to_provision_wins_over_the_same_one_desired_remotely(vboard, endpoint, capsys, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(endpoint.data_dir))
    secret = endpoint.add_device("shed-4")
    endpoint.store.set_desired("shed-4", {"interval_s": 900, "batch_size": 50})
    vboard.dir.mkdir(parents=True, exist_ok=True)
    config = {"device_id": "shed-4", "secret": secret, "wifi": [{"ssid": "s"}], "endpoint": endpoint.url + "/data"}
    (vboard.dir / "config.json").write_text(json.dumps(config))
    (vboard.dir / "settings.json").write_text(json.dumps({"v": 1, "interval_s": 900, "batch_size": 50}))
    assert main(["provision", "--port", vboard.port, "--interval", "120"]) == 0
    assert "no longer set remotely: interval_s" in capsys.readouterr().out
    assert json.loads((vboard.dir / "config.json").read_text())["interval_s"] == 120
    row = endpoint.store.get_device("shed-4")
    assert (row["desired"], row["desired_version"]) == ({"batch_size": 50}, 2)
    assert json.loads((vboard.dir / "settings.json").read_text()) == {"v": 2, "batch_size": 50}
