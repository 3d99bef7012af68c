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


def test_keeps_cycling_and_tools_catch_it_awake_and_hand_it_back(tmp_path, capsys):
    directory = tmp_path / "board"
    directory.mkdir()
    (directory / "main.py").write_text(MAIN)
    process, board = start_vboard(directory)
    try:
        assert wait_for(lambda: len(wakes(directory)) >= 3, 15), wakes(directory)
        first = wakes(directory)
        assert first[0] == "1" and set(first[1:]) == {"4"}, "power-on, then wakes from deep sleep"
        # A tool catches the board in a wake, interrupts it and hands it back running.
        assert main(["status", "--port", board.port]) == 0
        assert "not installed" in capsys.readouterr().out
        caught = len(wakes(directory))
        assert wait_for(lambda: len(wakes(directory)) >= caught + 3, 15), "the board cycles again"
        assert wakes(directory)[caught] == "5", "handed back by a soft reset, which no app counts as a crash"
        # dhtlink reset: the chip reboots, runs main.py and cycles again.
        assert main(["reset", "--port", board.port]) == 0
        stopped = len(wakes(directory))
        assert wait_for(lambda: len(wakes(directory)) >= stopped + 3, 15), wakes(directory)
    finally:
        process.terminate()
        process.wait(timeout=10)


# One wake, then six seconds of deep sleep.
SLEEPER = MAIN.replace("deepsleep(1000)", "deepsleep(6000)")


def test_serial_input_does_not_wake_a_sleeping_board(tmp_path):
    directory = tmp_path / "board"
    directory.mkdir()
    (directory / "main.py").write_text(SLEEPER)
    process, board = start_vboard(directory)
    try:
        assert wait_for(lambda: len(wakes(directory)) >= 1, 15)
        time.sleep(0.5)  # the wake is a few milliseconds: the board sleeps now
        with open(board.port, "wb", buffering=0) as uart:
            for _ in range(10):
                uart.write(b"\r\x03\r\x01")
                time.sleep(0.1)
        time.sleep(2)
        assert len(wakes(directory)) == 1, "bytes into a sleeping ESP32's UART are lost; only its timer wakes it"
        assert wait_for(lambda: len(wakes(directory)) >= 2, 15), "the timer does"
    finally:
        process.terminate()
        process.wait(timeout=10)


# Arms the watchdog at 2 s at power-on and returns to the REPL, as an app stopped with
# Ctrl-C does; later boots arm nothing, so only a watchdog still running resets them.
WATCHED = """
import machine
with open("wakes.txt", "a") as f:
    f.write("%d\\n" % machine.reset_cause())
if machine.reset_cause() == machine.PWRON_RESET:
    machine.WDT(0, 2000)
"""


def test_the_watchdog_keeps_running_at_the_repl_and_through_a_soft_reset(tmp_path):
    directory = tmp_path / "board"
    directory.mkdir()
    (directory / "main.py").write_text(WATCHED)
    process, board = start_vboard(directory)

    def board_runs(*args: str) -> None:
        done = subprocess.run(
            [MPREMOTE, "connect", board.port, *args], capture_output=True, text=True, timeout=30, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr

    try:
        assert wait_for(lambda: len(wakes(directory)) >= 2, 20), wakes(directory)
        assert wakes(directory)[:2] == ["1", "3"], "the REPL does not feed it: a watchdog reset"
        # Re-armed with a long timeout it stays quiet.
        board_runs("exec", "import machine; machine.WDT(0, 60000)")
        before = len(wakes(directory))
        time.sleep(3)
        assert len(wakes(directory)) == before
        # A soft reset does not stop it, from the raw REPL (Ctrl-D: main.py does not run)...
        board_runs("exec", "import machine; machine.WDT(0, 1500)", "soft-reset")
        assert wait_for(lambda: len(wakes(directory)) >= before + 1, 15), wakes(directory)
        assert wakes(directory)[before] == "3", "reset by the watchdog the soft reset kept"
        # ...nor machine.soft_reset(), which ends the exec (mpremote is left waiting for its end).
        board_runs("exec", "import machine; machine.WDT(0, 60000)")
        subprocess.run(
            [MPREMOTE, "connect", board.port, "exec", "import machine; machine.WDT(0, 1500); machine.soft_reset()"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert wait_for(lambda: len(wakes(directory)) >= before + 2, 15), wakes(directory)
        assert wakes(directory)[before + 1] == "3", "reset by the watchdog machine.soft_reset() kept"
    finally:
        process.terminate()
        process.wait(timeout=10)
