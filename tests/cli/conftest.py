"""A virtual board on a pseudo-terminal: what `dhtlink vboard` gives a user."""

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

DHTLINK = str(Path(sys.executable).parent / "dhtlink")


def _unconfined() -> list[str]:
    # Where the host cannot build the sandbox, the tests' boards run only the project's own
    # code and tests' code: they may run with MicroPython's wall alone.
    from host_tools.sim.vboard.board import sandbox_available

    return [] if sandbox_available() else ["--unconfined-board-can-reach-host"]


UNCONFINED = _unconfined()


@dataclass
class VBoard:
    port: str
    dir: Path


def start_vboard(directory: Path) -> tuple[subprocess.Popen, VBoard]:
    process = subprocess.Popen(
        [DHTLINK, "vboard", "--dir", str(directory), *UNCONFINED], stdout=subprocess.PIPE, text=True
    )
    port = process.stdout.readline().strip()
    assert os.path.realpath(port).startswith("/dev/pts/"), port
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


def every_parser(parser=None, path=()):
    """(path of sub-commands, parser) for the root and every verb and sub-verb."""
    from host_tools import cli

    parser = parser or cli.build_parser()
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from every_parser(sub, (*path, name))
