"""`dhtlink up` for real: a blank emulated ESP32 (the ROM bootloader emulator, then the
virtual board MicroPython stands in for; tests/serial/usb_esp32.py), through the image
write, the app upload, Improv Wi-Fi and the first stored reading; then a re-run that keeps
what the board has, and the one-line fixes where they can be provoked here."""

import json
import os
import pty
import re
import subprocess
import sys
import tty

import pytest

from host_tools.cli import main
from host_tools.serial.files import MANIFEST
from tests.cli.conftest import start_vboard
from tests.improv.conftest import ACCESS_POINTS, PASSWORD, prepare, stop
from tests.serial.test_firmware_image import build_image
from tests.serial.usb_esp32 import UsbEsp32


def phases(out: str) -> dict[str, float]:
    return {name: float(seconds) for name, seconds in re.findall(r"^  (\w+)\s+([\d.]+) s ", out, re.MULTILINE)}


@pytest.fixture
def blank_chip(tmp_path):
    usb = UsbEsp32(tmp_path / "usb")
    # The radio's world the chip will find once MicroPython runs (the virtual board's scenario).
    (usb.board_dir / ".vboard").mkdir(parents=True)
    (usb.board_dir / ".vboard" / "scenario.json").write_text(json.dumps({"access_points": ACCESS_POINTS}))
    yield usb
    usb.close()


@pytest.mark.slow
def test_up_takes_a_blank_chip_to_a_stored_reading_and_a_rerun_keeps_it(
    blank_chip, endpoint, tmp_path, capsys, monkeypatch
):
    from esptool import bin_image

    firmware = build_image(tmp_path, bin_image.ESP32FirmwareImage, "ESP32_GENERIC.bin")
    monkeypatch.setenv("DATA_DIR", str(endpoint.data_dir))
    monkeypatch.setenv("DHTLINK_WIFI_PASSWORD", PASSWORD)
    up = ["up", "-p", blank_chip.port, "--endpoint", endpoint.url, "--firmware", str(firmware)]
    assert main([*up, "--wifi-ssid", "home", "--no-browser"]) == 0
    out = capsys.readouterr().out
    with capsys.disabled():  # the phases' times, for docs/performance.md (pytest -s)
        print("\n" + out)
    assert list(phases(out)) == ["detect", "flash", "upload", "register", "wifi", "reach"], out
    assert "the ROM bootloader: no MicroPython yet" in out

    # The image went to 0x1000 of the chip's flash, MicroPython came up and holds the app whole.
    verify = subprocess.run(
        [
            sys.executable,
            "-m",
            "esptool",
            "--chip",
            "esp32",
            "--port",
            blank_chip.rom_port,
            "verify-flash",
            "0x1000",
            str(firmware),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "digest matched" in verify.stdout, verify.stdout + verify.stderr
    assert (blank_chip.board_dir / MANIFEST).exists()
    config = json.loads((blank_chip.board_dir / "config.json").read_text())
    device_id = config["device_id"]
    assert re.fullmatch(r"dht-[0-9a-f]{6}", device_id)
    assert config["wifi"] == [{"ssid": "home", "password": PASSWORD}], "given over Improv, kept on the board"
    assert config["endpoint"] == endpoint.url + "/data"
    assert endpoint.store.latest_reading(device_id), "the board's own first reading is stored"
    assert f"dashboard: {endpoint.url}/#/device/{device_id}" in out, "the board's Improv redirect URL"
    assert PASSWORD not in out
    secret = config["secret"]

    # Again, on the provisioned board: nothing flashed, nothing asked, identity and Wi-Fi kept.
    monkeypatch.delenv("DHTLINK_WIFI_PASSWORD")
    # The app's first wake can end before this opens the port; then only the next wake is
    # caught, 60 s on, and a loaded machine's boot took that past --wait's default 75 s.
    assert main([*up[:5], "--no-browser", "--wait", "180"]) == 0
    again = capsys.readouterr().out
    assert list(phases(again)) == ["detect", "upload", "register", "reach"], again
    assert "0 app files sent" in again and "kept its registered identity" in again
    config = json.loads((blank_chip.board_dir / "config.json").read_text())
    assert (config["device_id"], config["secret"], config["wifi"][0]["ssid"]) == (device_id, secret, "home")


def test_a_wrong_wifi_password_is_named_and_nothing_is_kept(tmp_path, endpoint, capsys, monkeypatch):
    prepare(tmp_path / "board", None)
    process, board = start_vboard(tmp_path / "board")
    try:
        monkeypatch.setenv("DATA_DIR", str(endpoint.data_dir))
        monkeypatch.setenv("DHTLINK_WIFI_PASSWORD", "Correct Horse Battery")
        args = ["up", "-p", board.port, "--endpoint", endpoint.url, "--wifi-ssid", "home", "--no-browser"]
        assert main([*args, "--device", "wrong-pw"]) == 1
        err = capsys.readouterr().err
        assert "could not join home: wrong Wi-Fi password (it is case-sensitive)" in err
        assert "Correct Horse" not in err
        assert json.loads((board.dir / "config.json").read_text())["wifi"] == []
        # The network the scan does not show is named with what it does show.
        assert main([*args[:5], "--wifi-ssid", "office", "--device", "wrong-pw"]) == 2
        assert "does not see it (it sees home, cafe-guest)" in capsys.readouterr().err
    finally:
        stop(process)


def test_a_firewalled_endpoint_is_named_with_its_fix(tmp_path, endpoint, capsys, monkeypatch):
    prepare(tmp_path / "board", None)
    scenario = tmp_path / "board" / ".vboard" / "scenario.json"
    world = json.loads(scenario.read_text())
    world["firewalled_ports"] = [int(endpoint.url.rsplit(":", 1)[1])]
    scenario.write_text(json.dumps(world))
    process, board = start_vboard(tmp_path / "board")
    try:
        monkeypatch.setenv("DATA_DIR", str(endpoint.data_dir))
        monkeypatch.setenv("DHTLINK_WIFI_PASSWORD", PASSWORD)
        args = ["up", "-p", board.port, "--endpoint", endpoint.url, "--wifi-ssid", "home", "--device", "walled"]
        assert main([*args, "--reading-wait", "15s", "--no-browser"]) == 1
        err = capsys.readouterr().err
        port = endpoint.url.rsplit(":", 1)[1]
        assert f"the board joined home but nothing reached {endpoint.url}/data within 15 s" in err
        assert f"sudo ufw allow {port}/tcp" in err and "--host 0.0.0.0" in err
    finally:
        stop(process)


def test_a_port_where_nothing_answers_says_hold_boot(tmp_path, capsys, monkeypatch):
    leader, follower = pty.openpty()
    tty.setraw(follower)
    try:
        monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
        port = os.ttyname(follower)
        assert main(["up", "-p", port, "--endpoint", "http://127.0.0.1:9", "--no-browser"]) == 1
        assert "Hold the board's BOOT button, press and release EN" in capsys.readouterr().err
    finally:
        os.close(leader)
        os.close(follower)


def test_permission_and_missing_port_messages(monkeypatch):
    import errno

    from host_tools import up
    from host_tools.errors import UsageError

    assert "sudo usermod -aG dialout $USER" in str(up.open_error("/dev/ttyUSB0", OSError(errno.EACCES, "denied")))
    monkeypatch.setattr("host_tools.serial.ports.candidates", list)
    monkeypatch.delenv("DHTLINK_PORT", raising=False)
    monkeypatch.setattr(up, "brltty_present", lambda: True)
    with pytest.raises(UsageError, match="sudo apt remove brltty"):
        up.chosen_port(None)
    monkeypatch.setattr(up, "brltty_present", lambda: False)
    with pytest.raises(UsageError, match="charge-only cable"):
        up.chosen_port(None)


def test_the_pinned_image_comes_from_the_cache_with_its_recorded_digest(tmp_path, monkeypatch):
    import hashlib

    from esptool import bin_image

    from host_tools import up
    from host_tools.errors import CommandError

    cache = tmp_path / "cache"
    cache.mkdir()
    image = build_image(cache, bin_image.ESP32FirmwareImage, up.FIRMWARE_NAME)
    (cache / (up.FIRMWARE_NAME + ".sha256")).write_text(hashlib.sha256(image.read_bytes()).hexdigest() + "\n")
    said: list[str] = []
    assert up.pinned_firmware(said.append, cache) == image and said == [], "kept bytes: no download"

    # Bytes that changed since they were checked are not used: downloaded again (refused here).
    image.write_bytes(image.read_bytes() + b"\0")

    def no_network(*_args, **_kwargs):
        raise OSError("no route to host")

    monkeypatch.setattr(up.urllib.request, "urlopen", no_network)
    with pytest.raises(CommandError, match="download it by other means and pass --firmware FILE"):
        up.pinned_firmware(said.append, cache)
    assert said[0].endswith("changed since it was downloaded; downloading it again")


def test_up_reuses_the_local_endpoint_listening_on_its_port(tmp_path, endpoint, capsys, monkeypatch):
    from host_tools import up

    prepare(tmp_path / "board", None)
    process, board = start_vboard(tmp_path / "board")
    try:
        # The board reaches this computer at its LAN address; the test's endpoint listens on loopback.
        monkeypatch.setattr(up, "lan_address", lambda: "127.0.0.1")
        monkeypatch.setenv("LISTEN_PORT", endpoint.url.rsplit(":", 1)[1])
        monkeypatch.setenv("DATA_DIR", str(endpoint.data_dir))
        monkeypatch.setenv("DHTLINK_WIFI_PASSWORD", PASSWORD)
        assert main(["up", "-p", board.port, "--wifi-ssid", "home", "--device", "reused", "--no-browser"]) == 0
        out = capsys.readouterr().out
        assert f"using the local endpoint already listening on port {endpoint.url.rsplit(':', 1)[1]}" in out
        assert endpoint.store.latest_reading("reused")
    finally:
        stop(process)
