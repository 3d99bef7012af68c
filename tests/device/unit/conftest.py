"""Run MicroPython snippets against device/ modules, under the 64 KiB heap."""

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from host_tools.serial.firmware import compiled_dir, sources
from host_tools.sim.vboard.board import MICROPYTHON

DEVICE = Path(__file__).resolve().parents[3] / "device"


def firmware_dir() -> Path:
    return compiled_dir(sources(DEVICE))


class MicroPython:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.fakes = workdir / "_fakes"
        self.fakes.mkdir()

    def fake(self, name: str, source: str) -> None:
        """A stand-in hardware module for this test only (the ESP32's radio and pins)."""
        (self.fakes / f"{name}.py").write_text(textwrap.dedent(source))

    def run(self, code: str, heap: str = "64k", check: bool = True) -> str:
        done = self.boot(code, heap, compiled=False)
        if check and done.returncode:
            raise AssertionError(f"MicroPython failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def boot(self, code: str, heap: str = "64k", compiled: bool = True) -> subprocess.CompletedProcess:
        """Run code with the firmware compiled by mpy-cross, as it is deployed (no compile
        spike on the heap); returns the finished process whatever its exit status."""
        firmware = firmware_dir() if compiled else DEVICE
        script = self.workdir / "_test.py"
        script.write_text(
            f"import sys\nsys.path.insert(0, {str(firmware)!r})\nsys.path.insert(0, {str(self.fakes)!r})\n"
            + textwrap.dedent(code)
        )
        return subprocess.run(
            [*MICROPYTHON, "-X", f"heapsize={heap}", str(script)],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,  # no host on the serial line (an unprovisioned board's Improv ends)
            capture_output=True,
            text=True,
            errors="replace",  # Improv's packets are binary
            timeout=60,
            check=False,
        )

    def json(self, code: str) -> object:
        return json.loads(self.run(code).strip().splitlines()[-1])

    def compiled_json(self, code: str) -> object:
        """Like json(), with the firmware compiled as deployed."""
        done = self.boot(code)
        if done.returncode:
            raise AssertionError(f"MicroPython failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def mpy(tmp_path) -> MicroPython:
    return MicroPython(tmp_path)
