"""The bridge's Ctrl-C: checked and scheduled with the board stopped (pty_bridge._interrupt_if_on),
on a stand-in process whose SIGINT and SIGUSR1 are what the board's would be."""

import subprocess
import sys
import time

import pytest

from host_tools.sim.vboard.pty_bridge import _interrupt_if_on, _stopped

# SIGUSR1 prints "usr1"; SIGINT is caught (the interrupt character on) or default; each
# line on stdin is answered, so the test sees the process runs on afterwards.
STAND_IN = """
import signal, sys
signal.signal(signal.SIGUSR1, lambda *_: print("usr1", flush=True))
signal.signal(signal.SIGINT, (lambda *_: None) if sys.argv[1] == "on" else signal.SIG_DFL)
print("ready", flush=True)
for line in sys.stdin:
    print("echo " + line.strip(), flush=True)
"""


@pytest.fixture
def stand_in():
    started = []

    def start(interrupt_char: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-c", STAND_IN, interrupt_char],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group, as the board's
        )
        started.append(process)
        assert process.stdout.readline() == "ready\n"
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()


def answers(process: subprocess.Popen) -> list[str]:
    process.stdin.write("x\n")
    process.stdin.flush()
    lines = []
    while not lines or lines[-1] != "echo x":
        lines.append(process.stdout.readline().strip())
    return lines


def test_a_ctrl_c_while_the_interrupt_character_is_on_is_scheduled_and_the_board_runs_on(stand_in):
    board = stand_in("on")
    assert _interrupt_if_on(board.pid) is True
    assert answers(board) == ["usr1", "echo x"]
    assert not _stopped(board.pid)


def test_a_ctrl_c_while_it_is_off_is_not_scheduled_and_the_board_runs_on(stand_in):
    board = stand_in("off")
    assert _interrupt_if_on(board.pid) is False
    assert answers(board) == ["echo x"]
    assert not _stopped(board.pid)


def test_a_board_that_ended_gets_no_interrupt(stand_in):
    board = stand_in("on")
    board.kill()
    board.wait()
    started = time.monotonic()
    assert _interrupt_if_on(board.pid) is False
    assert time.monotonic() - started < 1
