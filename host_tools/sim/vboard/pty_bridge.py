"""The virtual board on a pseudo-terminal, answering mpremote as an ESP32 does.

Two pseudo-terminals: the host side, whose path tools open like /dev/ttyUSB0, and the
board side, the controlling terminal of the MicroPython process (so Ctrl-C interrupts a
running program as the UART's interrupt character does). The bridge copies bytes between
them and plays the chip around the process:
- Ctrl-D in the raw REPL ends the Unix port; the bridge answers "soft reboot" and starts
  a fresh interpreter in the raw REPL, as a board does (main.py does not run then).
- machine.deepsleep / reset / a watchdog end the process with 75 / 76 / 77; the bridge
  boots it again with boot.py and main.py, so a provisioned board keeps cycling on its
  own in real time. A deep sleep lasts its real duration, unless the host sends
  something first: then the board wakes at once, as if its reset button had been
  pressed, so tools never wait out a long sleep.
- Host bytes are held while a board boots, until its first line (the ROM's reset line,
  or the REPL's banner): a Ctrl-C that reached the process before MicroPython handles
  SIGINT would kill it instead of interrupting main.py. After that, Ctrl-C interrupts
  main.py and the REPL takes over, as on the chip's UART.
"""

import fcntl
import os
import pty
import select
import signal
import subprocess
import termios
import time
import tty
from pathlib import Path

from host_tools.sim.vboard.board import (
    EXIT_DEEPSLEEP,
    EXIT_RESET,
    EXIT_SOFT_RESET,
    EXIT_WDT,
    VirtualBoard,
    _env,
    command,
)

CTRL_A, CTRL_B = 0x01, 0x02


def _board_side_tty(fd: int) -> None:
    # Raw like a UART (no echo, no line editing, no \n -> \r\n), but Ctrl-C still signals.
    tty.setraw(fd)
    attrs = termios.tcgetattr(fd)
    attrs[3] |= termios.ISIG
    termios.tcsetattr(fd, termios.TCSANOW, attrs)


class PtyBridge:
    def __init__(self, board: VirtualBoard) -> None:
        self.board = board
        self.host_fd, self.host_slave = pty.openpty()
        tty.setraw(self.host_slave)
        self.path = os.ttyname(self.host_slave)
        self.process: subprocess.Popen[bytes] | None = None
        self.board_fd = -1
        self.raw_repl = False
        self.pending = b""  # host bytes that arrived while the board was asleep or booting
        self.booting = False  # no line from the board yet since it started

    def _start(self, run_main: bool) -> None:
        board_fd, board_slave = pty.openpty()
        _board_side_tty(board_slave)

        def controlling_tty() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        args = command(self.board.dir, self.board._heap_flag(), "main" if run_main else "repl")
        self.process = subprocess.Popen(
            args,
            stdin=board_slave,
            stdout=board_slave,
            stderr=board_slave,
            cwd=self.board.dir,
            env=_env(),
            preexec_fn=controlling_tty,  # noqa: PLW1509 - setsid + TIOCSCTTY must run in the child
        )
        os.close(board_slave)
        self.board_fd = board_fd
        self.booting = True

    def _reboot(self, status: int) -> None:
        os.close(self.board_fd)
        self.board_fd = -1
        self.board.mark_reset(status)
        if status == EXIT_DEEPSLEEP:
            deadline = time.monotonic() + self.board.last_sleep_s()
            while time.monotonic() < deadline and not self.pending:
                readable, _, _ = select.select([self.host_fd], [], [], min(0.2, deadline - time.monotonic()))
                if readable:
                    self.pending += os.read(self.host_fd, 4096)
            self._start(run_main=True)
        elif status in (EXIT_RESET, EXIT_WDT, EXIT_SOFT_RESET):
            self._start(run_main=True)
        else:
            # The Unix port ends on Ctrl-D; a board soft-resets instead.
            self.board.soft_reboot()
            os.write(self.host_fd, b"soft reboot\r\n")
            in_raw = self.raw_repl
            self._start(run_main=not in_raw)
            if in_raw:
                self.pending = bytes([CTRL_A]) + self.pending

    def serve(self) -> None:
        self._start(run_main=True)
        while True:
            fds = [self.host_fd, self.board_fd]
            readable, _, _ = select.select(fds, [], [], 0.5)
            if self.host_fd in readable:
                data = os.read(self.host_fd, 4096)
                for byte in data:
                    if byte == CTRL_A:
                        self.raw_repl = True
                    elif byte == CTRL_B:
                        self.raw_repl = False
                if self.booting:
                    self.pending += data
                else:
                    os.write(self.board_fd, data)
            if self.board_fd in readable:
                try:
                    data = os.read(self.board_fd, 4096)
                except OSError:
                    data = b""
                if data:
                    os.write(self.host_fd, data)
                    if self.booting and b"\n" in data:
                        self.booting = False
                        if self.pending:
                            os.write(self.board_fd, self.pending)
                            self.pending = b""
            assert self.process is not None
            status = self.process.poll()
            if status is not None:
                self._drain_board()
                self._reboot(status)

    def _drain_board(self) -> None:
        while True:
            readable, _, _ = select.select([self.board_fd], [], [], 0.05)
            if not readable:
                return
            try:
                data = os.read(self.board_fd, 4096)
            except OSError:
                return
            if not data:
                return
            os.write(self.host_fd, data)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def run(directory: Path) -> None:
    board = VirtualBoard(directory)
    board.power_on_blank()
    bridge = PtyBridge(board)

    def terminate(*_: object) -> None:
        # A plain kill takes the MicroPython process down too; no unwinding from a signal.
        bridge.stop()
        os._exit(0)

    signal.signal(signal.SIGTERM, terminate)
    print(bridge.path, flush=True)
    try:
        bridge.serve()
    finally:
        bridge.stop()
