"""An unprovisioned virtual board on a pseudo-terminal: the app on its flash, no Wi-Fi yet,
and access points around it whose passwords the test knows."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import serial

from host_tools.serial import firmware
from host_tools.serial.improv import Improv
from tests.cli.conftest import VBoard, isolated, start_vboard  # noqa: F401

HERE = Path(__file__).resolve().parent
SDK = HERE / "node_modules" / "improv-wifi-serial-sdk" / "package.json"
PASSWORD = "correct horse battery"
ACCESS_POINTS = [
    {"ssid": "home", "bssid": "a0b1c2d3e4f5", "channel": 6, "rssi": -48, "password": PASSWORD},
    {"ssid": "home", "bssid": "a0b1c2d3e4f6", "channel": 11, "rssi": -71, "password": PASSWORD},
    {"ssid": "cafe-guest", "bssid": "0a1b2c3d4e5f", "channel": 1, "rssi": -80, "password": ""},
]
IDENTITY = {
    "device_id": "porch-1",
    "secret": "ab" * 32,
    "endpoint": "http://127.0.0.1:8080/data",
    "wifi": [],
}


def prepare(directory: Path, config: dict | None) -> None:
    """The app on the board's flash (as `dhtlink flash` leaves it) and the radio's world."""
    (directory / ".vboard").mkdir(parents=True)
    for name, content in firmware.build().items():
        (directory / name).write_bytes(content)
    if config is not None:
        (directory / "config.json").write_text(json.dumps(config))
    (directory / ".vboard" / "scenario.json").write_text(json.dumps({"access_points": ACCESS_POINTS}))


def wait_listening(port: str, timeout: float = 20) -> None:
    with serial.Serial(port, 115200, timeout=0.1) as line:
        assert Improv(line).listen(timeout) == 2, "the board announces Improv's READY state when it starts listening"


def stop(process: subprocess.Popen) -> None:
    """End a `dhtlink vboard` (a loaded machine may take a while to schedule it)."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


@pytest.fixture
def unprovisioned(tmp_path):
    prepare(tmp_path / "board", IDENTITY)
    process, board = start_vboard(tmp_path / "board")
    yield board
    stop(process)


def reference_client(board: VBoard, ssid: str, password: str) -> list[dict]:
    """improv-wifi-serial-sdk's ImprovSerial against the board: initialize, scan, provision."""
    if not SDK.exists() or not shutil.which("node"):
        pytest.fail("the Improv reference client is not installed: `make improv-client` (npm ci in tests/improv)")
    done = subprocess.run(
        ["node", "--import", "./register.mjs", "client.mjs", board.port, ssid],
        cwd=HERE,
        env={"PATH": "/usr/bin:/bin", "IMPROV_PASSWORD": password},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]
