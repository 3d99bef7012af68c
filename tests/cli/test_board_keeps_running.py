"""Looking at a running board leaves it running: a provisioned virtual board keeps
delivering through every verb that looks at it, its watchdog never resets it under a verb,
and no look is counted as a crash (issue 22)."""

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools.cli import main
from host_tools.serial.board import Board
from tests.cli.test_board_commands import flash, provision

DHTLINK = str(Path(sys.executable).parent / "dhtlink")
DEVICE = "porch-1"
APP_WDT_S = 30  # device/app.py's WDT_MS


@pytest.fixture
def running(vboard, endpoint, tmp_path, capsys, monkeypatch):
    """The board flashed, provisioned to read every 5 s and send each reading, and delivering."""
    monkeypatch.setenv("DATA_DIR", str(endpoint.data_dir))
    password = tmp_path / "wifi"
    password.write_text("correct horse\n")
    flash(vboard.port, capsys)
    assert provision(vboard.port, endpoint.url, password, DEVICE, "--interval", "5", "--batch-size", "1") == 0
    assert main(["reset", "--port", vboard.port]) == 0
    assert arrives(endpoint, 0, 60), "the provisioned board delivers"
    capsys.readouterr()
    return vboard


def latest_seq(endpoint) -> int:
    reading = endpoint.store.latest_reading(DEVICE)
    return reading["seq"] if reading else 0


def arrives(endpoint, after: int, within: float) -> bool:
    """A reading newer than seq `after` reaches the receiver within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if latest_seq(endpoint) > after:
            return True
        time.sleep(0.5)
    return False


def no_crash_counted(board_dir: Path) -> None:
    log = "".join(path.read_text() for path in (board_dir / "log.1.txt", board_dir / "log.txt") if path.exists())
    assert "(reset cause 3)" not in log, "a watchdog reset"
    assert "crash" not in log and "safe mode" not in log
    rtc = json.loads((board_dir / ".vboard" / "rtc_memory.bin").read_bytes() or b"{}")
    assert rtc.get("crashes", 0) == 0
    assert not (board_dir / "SAFE").exists()


@pytest.mark.slow
def test_status_logs_and_repl_hand_the_board_back_delivering(running, endpoint, capsys):
    for verb in (["status"], ["logs"], ["status", "--json"]):
        before = latest_seq(endpoint)
        assert main([*verb, "--port", running.port]) == 0
        out = capsys.readouterr()
        assert "left at the REPL" not in out.err
        assert arrives(endpoint, before, 40), f"readings keep arriving after `dhtlink {' '.join(verb)}`"
    assert "I boot" in out.out or DEVICE in out.out

    # dhtlink repl in a terminal: a line typed, Ctrl-] to leave, and the app runs again.
    before = latest_seq(endpoint)
    leader, follower = pty.openpty()
    repl = subprocess.Popen([DHTLINK, "repl", "-p", running.port], stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    seen = read_until(leader, b"exit this shell", 90)
    os.write(leader, b"\r")
    seen += read_until(leader, b">>> ", 20)
    os.write(leader, b"print(6 * 7)\r")
    seen += read_until(leader, b"42", 20)
    time.sleep(APP_WDT_S + 5)  # longer than the app's watchdog: held by the verb, it does not fire
    os.write(leader, b"print(6 * 8)\r")
    seen += read_until(leader, b"48", 20)
    os.write(leader, b"\x1d")  # Ctrl-]
    seen += read_until(leader, b"the app runs again", 90)
    assert repl.wait(timeout=30) == 0, seen
    os.close(leader)
    assert arrives(endpoint, before, 40), "readings keep arriving after `dhtlink repl`"
    no_crash_counted(running.dir)


def read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    assert marker in seen, seen.decode(errors="replace")
    return seen


@pytest.mark.slow
def test_a_held_board_is_not_reset_by_the_apps_watchdog(running, endpoint):
    with Board(running.port, say=None) as board:
        assert board.was_running and board.watchdog_held
        time.sleep(APP_WDT_S + 5)
        assert board.exec("print(6 * 7)").strip() == "42", "still the same REPL session"
    before = latest_seq(endpoint)
    assert arrives(endpoint, before, 40)
    no_crash_counted(running.dir)


@pytest.mark.slow
def test_logs_follow_prints_every_wake_for_a_minute_while_readings_arrive(running, endpoint):
    first = latest_seq(endpoint)
    follower = subprocess.Popen(
        [DHTLINK, "logs", "--follow", "-p", running.port], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    time.sleep(30)
    halfway = latest_seq(endpoint)
    time.sleep(30)
    last = latest_seq(endpoint)
    follower.terminate()
    out, _ = follower.communicate(timeout=10)
    assert first < halfway < last, "readings kept arriving throughout"
    lines = out.splitlines()
    assert all(re.match(r"\[\d\d:\d\d:\d\d\] ", line) for line in lines[1:]), out
    wakes = [line for line in lines if re.match(r"\[..:..:..\] rst:0x5 \(DEEPSLEEP_RESET\)", line)]
    sent = [line for line in lines if re.search(r"\] I sent 1 readings, seq \d+-\d+$", line)]
    # Each reading taken in the minute was sent on its own (batch 1): one wake, one send, one reading stored.
    assert len(wakes) >= 8, out
    assert abs(len(sent) - (last - first)) <= 2, (last - first, out)
    assert abs(len(wakes) - len(sent)) <= 1, out
    no_crash_counted(running.dir)
