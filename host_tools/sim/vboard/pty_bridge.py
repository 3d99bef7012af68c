"""The virtual board on a pseudo-terminal, answering mpremote as an ESP32 does.

Two pseudo-terminals: the host side, which tools open like /dev/ttyUSB0 through a link
(BOARD_DIR/.vboard/tty: mpremote reads a path under /dev/pts/ as a QEMU console, without
its timeouts, and would wait for ever on a board that is asleep), and the board side,
the controlling terminal of the MicroPython process (so Ctrl-C interrupts a running
program as the UART's interrupt character does). The bridge copies bytes between
them and plays the chip around the process:
- Ctrl-D in the raw REPL ends the Unix port; the bridge answers "soft reboot" and starts
  a fresh interpreter in the raw REPL, as a board does (main.py does not run then).
- machine.deepsleep / reset / a watchdog end the process with 75 / 76 / 77; the bridge
  boots it again with boot.py and main.py, so a provisioned board keeps cycling on its
  own in real time. A deep sleep lasts its real duration, and what the host sends
  meanwhile is lost: the UART is powered down with the rest of the chip, and only the
  RTC timer (or the reset button) wakes it (ports/esp32/modmachine.c arms the timer
  wake-up alone). Tools catch the board at its next wake (host_tools/serial/board.py).
- The watchdog the app armed (machine.WDT, ports/esp32/machine_wdt.c: the ESP-IDF task
  watchdog) cannot be stopped: it keeps running at the REPL, in the raw REPL and through
  a soft reset, and only re-arming it with another timeout changes it. The bridge resets
  the board when it goes unfed past its timeout, whatever the board is doing, as the
  chip does, and the next boot reads WDT_RESET.
- Host bytes are held while a board boots, until its first line (the ROM's reset line,
  or the REPL's banner), and then reach it as data, as bytes the ESP32's UART takes in
  before MicroPython sets its interrupt character do. After that, a Ctrl-C while the
  interrupt character is on interrupts main.py and the REPL takes over, as on the chip.
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

from host_tools.errors import CommandError
from host_tools.sim.vboard.board import (
    EXIT_DEEPSLEEP,
    EXIT_RESET,
    EXIT_WDT,
    VirtualBoard,
    _env,
    command,
    sandbox_available,
)

CTRL_A, CTRL_B, CTRL_C = 0x01, 0x02, 0x03
# A process in an uninterruptible wait stops only when it ends; past this the check goes on
# with the board running, as before the stop was added.
STOP_WAIT_S = 2.0


def _board_side_tty(fd: int) -> None:
    # Raw like a UART (no echo, no line editing, no \n -> \r\n); Ctrl-C is the bridge's
    # (PtyBridge._to_board), as the interrupt character is the UART driver's on the chip.
    tty.setraw(fd)


def _interrupt_char_on(pid: int) -> bool:
    """Whether MicroPython's interrupt character is Ctrl-C now: the Unix port catches SIGINT
    exactly while it is (unix_mphal.c, mp_hal_set_interrupt_char), as the ESP32's UART
    driver compares each byte with it (uart.c): while code runs, unless the code switched
    it off with micropython.kbd_intr(-1)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (signal.SIGINT - 1) & 1)
    except OSError:
        pass
    return False


def _stopped(pid: int) -> bool:
    """Whether the process is stopped (or gone): its state in /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("T", "t", "Z", "X")


def _interrupt_if_on(pid: int) -> bool:
    """Schedule KeyboardInterrupt if the interrupt character is still on, with the board
    stopped so that it cannot switch it off in between. The chip's UART interrupt
    compares and schedules in one step, and an execution handles what is pending before
    it ends (shared/runtime/pyexec.c; the Unix port's execute_from_lexer alike). Checked
    and sent apart, a Ctrl-C checked during one command landed after it ended, stayed
    pending and was raised in the next one (a load-20 run of make test)."""
    try:
        os.killpg(pid, signal.SIGSTOP)
    except ProcessLookupError:  # the board ended: the bridge sees its exit next
        return False
    try:
        deadline = time.monotonic() + STOP_WAIT_S
        while not _stopped(pid) and time.monotonic() < deadline:
            time.sleep(0.001)
        on = _interrupt_char_on(pid)
        if on:
            os.killpg(pid, signal.SIGUSR1)  # delivered as the board continues, before its next step
    finally:
        os.killpg(pid, signal.SIGCONT)
    return on


class PtyBridge:
    def __init__(self, board: VirtualBoard) -> None:
        self.board = board
        self.host_fd, self.host_slave = pty.openpty()
        tty.setraw(self.host_slave)
        self.path = str(board.state_dir / "tty")
        board.state_dir.mkdir(parents=True, exist_ok=True)
        Path(self.path).unlink(missing_ok=True)
        os.symlink(os.ttyname(self.host_slave), self.path)
        self.process: subprocess.Popen[bytes] | None = None
        self.board_fd = -1
        self.raw_repl = False  # the REPL the host's Ctrl-A / Ctrl-B last asked for
        # ...as of the board's last output, which answered those bytes: what its interpreter
        # was in when it ended. A host answers a soft reset's last output at once (mpremote's
        # Ctrl-B after machine.soft_reset() in an exec): that byte is for the next interpreter.
        self.raw_repl_shown = False
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
            self.pending = b""
            deadline = time.monotonic() + self.board.last_sleep_s()
            while time.monotonic() < deadline:
                readable, _, _ = select.select([self.host_fd], [], [], max(0.0, min(0.2, deadline - time.monotonic())))
                if readable:
                    self._host_bytes(os.read(self.host_fd, 4096))  # into a powered-down UART: lost
            self.raw_repl = False
            self._start(run_main=True)
        elif status in (EXIT_RESET, EXIT_WDT):
            self.pending = b""
            self.raw_repl = False
            self._start(run_main=True)
        else:
            # The Unix port ends on Ctrl-D; a board soft-resets instead (as on
            # machine.soft_reset()), says so, and then reads SOFT_RESET (is_soft_reset in
            # ports/esp32/modmachine.c); main.py runs only if it was the friendly REPL
            # (ports/esp32/main.c's pyexec_mode_kind).
            self.board.soft_reboot()
            os.write(self.host_fd, b"soft reboot\r\n")
            in_raw = self.raw_repl_shown
            self.raw_repl = in_raw
            self._start(run_main=not in_raw)
            if in_raw:
                self.pending = bytes([CTRL_A]) + self.pending

    def _to_board(self, data: bytes) -> None:
        """Host bytes into the board's UART: a Ctrl-C while the interrupt character is on
        schedules KeyboardInterrupt (SIGUSR1, launch.py) and is not queued, as in the ESP32's
        UART driver (ports/esp32/uart.c); otherwise it is data, as for Improv Wi-Fi's packets."""
        assert self.process is not None
        while CTRL_C in data and _interrupt_char_on(self.process.pid):
            head, _, data = data.partition(bytes([CTRL_C]))
            os.write(self.board_fd, head)
            if not _interrupt_if_on(self.process.pid):
                data = bytes([CTRL_C]) + data
                break
        if data:
            os.write(self.board_fd, data)

    def _board_bytes(self, data: bytes) -> None:
        os.write(self.host_fd, data)
        self.raw_repl_shown = self.raw_repl

    def _host_bytes(self, data: bytes) -> None:
        for byte in data:
            if byte == CTRL_A:
                self.raw_repl = True
            elif byte == CTRL_B:
                self.raw_repl = False

    def _watchdog_fired(self) -> bool:
        """Reset the board if the watchdog armed on it went unfed past its timeout."""
        assert self.process is not None
        if not self.board._watchdog_expired():
            return False
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._drain_board()
        state = self.board._read_state()
        state.pop("wdt", None)  # a chip reset stops it; the next boot's app arms it again
        self.board._write_state(state)
        # What the ESP-IDF task watchdog prints before it resets the chip.
        os.write(
            self.host_fd,
            b"\r\nE (0) task_wdt: Task watchdog got triggered. The following tasks/users did not reset the "
            b"watchdog in time:\r\nE (0) task_wdt:  - mpy_machine_wdt\r\n",
        )
        self._reboot(EXIT_WDT)
        return True

    def serve(self) -> None:
        self._start(run_main=True)
        while True:
            fds = [self.host_fd, self.board_fd]
            readable, _, _ = select.select(fds, [], [], 0.2)
            if self.host_fd in readable:
                data = os.read(self.host_fd, 4096)
                self._host_bytes(data)
                if self.booting:
                    self.pending += data
                else:
                    self._to_board(data)
            if self.board_fd in readable:
                try:
                    data = os.read(self.board_fd, 4096)
                except OSError:
                    data = b""
                if data:
                    self._board_bytes(data)
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
            else:
                self._watchdog_fired()

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
            self._board_bytes(data)

    def stop(self) -> None:
        Path(self.path).unlink(missing_ok=True)
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


UNCONFINED = (
    "this host cannot build the virtual board's OS sandbox (no user and mount namespaces), so code on the "
    "board could reach this computer's files through the MicroPython Unix port. Enable unprivileged user "
    "namespaces (sysctl kernel.unprivileged_userns_clone=1, or run in a container that allows them), or, on a "
    "machine you can afford to expose to what you run on the board, pass --unconfined-board-can-reach-host"
)


def check_confinement(allow_unconfined: bool) -> None:
    if not allow_unconfined and not sandbox_available():
        raise CommandError(UNCONFINED)


def run(directory: Path, allow_unconfined: bool = False) -> None:
    check_confinement(allow_unconfined)
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
