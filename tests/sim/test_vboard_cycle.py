"""`dhtlink vboard` behaves like a board left on the bench: it keeps waking on its own in
real time, and a tool can still interrupt it over the UART and reset it."""

import subprocess
import sys
import time
from pathlib import Path

from host_tools.cli import main
from tests.cli.conftest import start_vboard

MPREMOTE = str(Path(sys.executable).parent / "mpremote")
# One line per wake in a file on the flash, then a second of deep sleep.
MAIN = """
import machine
with open("wakes.txt", "a") as f:
    f.write("%d\\n" % machine.reset_cause())
machine.deepsleep(1000)
"""


def wakes(directory: Path) -> list[str]:
    path = directory / "wakes.txt"
    return path.read_text().split() if path.exists() else []


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_keeps_cycling_and_answers_ctrl_c_and_reset(tmp_path, capsys):
    directory = tmp_path / "board"
    directory.mkdir()
    (directory / "main.py").write_text(MAIN)
    process, board = start_vboard(directory)
    try:
        assert wait_for(lambda: len(wakes(directory)) >= 3, 15), wakes(directory)
        first = wakes(directory)
        assert first[0] == "1" and set(first[1:]) == {"4"}, "power-on, then wakes from deep sleep"
        # Ctrl-C over the UART stops the cycle at the REPL, as on the chip.
        done = subprocess.run(
            [MPREMOTE, "connect", board.port, "resume", "exec", "print(6 * 7)"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0 and done.stdout.strip().endswith("42"), done.stdout + done.stderr
        stopped = len(wakes(directory))
        time.sleep(2.5)
        assert len(wakes(directory)) == stopped, "the board waits at the REPL once interrupted"
        # dhtlink reset: the chip reboots, runs main.py and cycles again.
        assert main(["reset", "--port", board.port]) == 0
        assert wait_for(lambda: len(wakes(directory)) >= stopped + 3, 15), wakes(directory)
    finally:
        process.terminate()
        process.wait(timeout=10)
