"""A virtual board on a pseudo-terminal: what `dhtlink vboard` gives a user."""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

DHTLINK = str(Path(sys.executable).parent / "dhtlink")


@dataclass
class VBoard:
    port: str
    dir: Path


def start_vboard(directory: Path) -> tuple[subprocess.Popen, VBoard]:
    process = subprocess.Popen([DHTLINK, "vboard", "--dir", str(directory)], stdout=subprocess.PIPE, text=True)
    port = process.stdout.readline().strip()
    assert port.startswith("/dev/"), port
    return process, VBoard(port, directory)


@pytest.fixture
def vboard(tmp_path):
    process, board = start_vboard(tmp_path / "board")
    yield board
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DHTLINK_PORT", raising=False)
    monkeypatch.delenv("DHTLINK_WIFI_PASSWORD", raising=False)
