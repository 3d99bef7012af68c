"""A board at the other end of a serial port: the verbs the host tools need, over
mpremote's SerialTransport (raw REPL).

Opening a Board takes the board from its app and closing it hands it back as it was
found, without a reset a user or the app would count:
- catch: an awake board is interrupted with Ctrl-C. A board in deep sleep hears nothing
  (the ESP32's UART is powered down), so a silent board is waited for: the first byte it
  prints at its next wake (the ROM's reset line) is answered at once with Ctrl-C, inside
  the wake. A board that stays silent gets a message saying what to do.
- hold: the watchdog an app armed (machine.WDT) cannot be stopped on the ESP32 and keeps
  running at the REPL (ports/esp32/machine_wdt.c); the ESP32 lets it be re-armed, so
  while a tool holds the board it is re-armed with a long timeout (HOLD_WDT_MS).
- release: a board that was running its app is soft-reset (Ctrl-D at the friendly REPL):
  main.py runs again, the app arms its own watchdog with its own timeout, and the reset
  reads SOFT_RESET, which the app never counts as a crash; RTC memory and the clock are
  kept. A board that was found at its REPL is left there.
"""

import hashlib
import json
import random
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

from host_tools.errors import CommandError

# Long enough for a board that sleeps the app's default 60 s between readings to wake.
WAKE_WAIT_S = 75
# The watchdog while a tool holds the board: long enough for any verb, short enough that
# a board a killed tool left at the REPL goes back to work by itself.
HOLD_WDT_MS = 30 * 60 * 1000
# How often a catch sends Ctrl-C, Ctrl-A while the board has not entered the raw REPL:
# a real app's wake (hundreds of ms at least) hears one. Each gap is drawn at random up to
# this, so that the pairs cannot stay in step with a board that wakes on a fixed period.
CATCH_EVERY_S = 0.05
# The shortest gap between two pairs: what the board prints is answered at once (a wake
# may be over within milliseconds of its first line) but not byte by byte.
CATCH_ANSWER_S = 0.003
# How long a board that holds a command may stay silent before it counts as gone.
ANSWER_TIMEOUT_S = 10
# Silence after which a catch says it waits for the board's next wake.
SILENT_AFTER_S = 1.0
# MicroPython's own version ("1.29.0-preview"), not sys.version's leading "3.4.0", the
# Python language level MicroPython implements.
VERSION_EXPRESSION = (
    "'.'.join(str(p) for p in __import__('sys').implementation.version[:3])"
    " + ''.join('-' + str(p) for p in __import__('sys').implementation.version[3:] if p)"
)
# Re-arms the watchdog where the app arms one (app installed, not in safe mode); a board
# without it gets no watchdog it never had. Prints that, and whether main.py is there.
HOLD = """
import os, machine
def _hold():
    names = os.listdir('/')
    main = int('main.py' in names)
    if 'SAFE' in names or not ('app.mpy' in names or 'app.py' in names):
        return 0, main
    machine.WDT(0, {ms})
    return 1, main
print(*_hold())
del _hold
"""
SILENT = (
    "the board on {port} printed nothing for {wait:.0f} s and did not answer Ctrl-C. If it runs dhtlink's app it "
    "is in deep sleep between readings, longer than that: retry with --wait SECONDS above its interval, or "
    "press its reset button once and run the command within a few seconds (its readings are on flash and are "
    "kept; RTC memory and the clock restart, and the app sets the clock again and dates the readings taken "
    "before that at its next connection). Otherwise a program that ignores Ctrl-C is running, or this is not "
    "MicroPython: `dhtlink flash --firmware` it"
)


class BoardFiles(Protocol):
    """What the board verbs need of a board: a real one on a serial port (Board, also a
    virtual board's pseudo-terminal), or a test's stand-in. Type-checked (make lint)."""

    def exec(self, code: str) -> str: ...
    def read_file(self, path: str) -> bytes | None: ...
    def exists(self, path: str) -> bool: ...
    def sha256(self, path: str) -> str | None: ...
    def write_file(self, path: str, data: bytes, progress: Callable[[int, int], Any] | None = None) -> None: ...
    def remove(self, path: str) -> None: ...
    def mpy_version(self) -> tuple[int, int]: ...


def notice(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Board:
    def __init__(self, port: str, wait_s: float = WAKE_WAIT_S, say: Callable[[str], Any] | None = notice) -> None:
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        self.port = port
        self.say = say or (lambda _text: None)
        self.was_running = False  # the app ran when the board was caught: release resumes it
        self.watchdog_held = False
        self.released = False
        try:
            self.transport = SerialTransport(port, baudrate=115200)
        except TransportError as error:
            raise CommandError(
                f"cannot open {port}: {error}; is another program (a REPL, a monitor) holding it?"
            ) from None
        serial = self.transport.serial
        try:
            serial.timeout = 0.05
            entered = self._enter_raw_repl(wait_s)
            # mpremote's blocking reads (a raw paste's window answers) wait this long, not for
            # ever (its default), for a board that stopped answering mid-command.
            serial.timeout = ANSWER_TIMEOUT_S
            if not entered:
                raise CommandError(SILENT.format(port=port, wait=wait_s))
            held, has_main = self.exec(HOLD.format(ms=HOLD_WDT_MS)).split()[-2:]
            self.watchdog_held = held == "1"
            # A Ctrl-C that landed in a board's start-up (the REPL follows it on a board
            # without main.py) interrupted no app: a soft reset would resume nothing.
            self.was_running = self.was_running and has_main == "1"
        except BaseException:
            self.transport.close()
            raise

    def _read_for(self, seconds: float) -> bytes:
        serial = self.transport.serial
        got = b""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            got += serial.read(max(1, serial.in_waiting))
        return got

    def _enter_raw_repl(self, wait_s: float) -> bool:
        """Interrupt whatever runs and enter the raw REPL, catching a sleeping board at its
        next wake, within a deadline: mpremote's own entry gives up after 10 s.

        Ctrl-C then Ctrl-A go out at random gaps of up to CATCH_EVERY_S, and at once when
        the board prints (no closer than CATCH_ANSWER_S), until the raw REPL's banner comes back.
        Into a sleeping chip's UART they are lost; the first pair that reaches it with its
        interrupt character on interrupts the app (Ctrl-C) and, once the friendly REPL
        reads on, enters the raw REPL (Ctrl-A). Bytes that reach it earlier in its start-up
        are mere data (ports/esp32/uart.c), so answering its first line matters most for a
        short wake. A fixed period lost for minutes on end to a board cycling every second:
        its wake drifted past the pairs by a millisecond a cycle."""
        serial = self.transport.serial
        # mpremote's exec expects the ">" prompt after the banner still unread: stop right before it.
        banner = b"raw REPL; CTRL-B to exit\r\n"
        start = time.monotonic()
        deadline = start + wait_s
        seen = b""
        heard = False
        next_try = start
        sent = start - CATCH_ANSWER_S
        serial.timeout = CATCH_ANSWER_S
        try:
            while time.monotonic() < deadline:
                if time.monotonic() >= next_try:
                    serial.write(b"\x03\x01")
                    sent = time.monotonic()
                    next_try = sent + random.uniform(CATCH_ANSWER_S, CATCH_EVERY_S)
                data = serial.read(max(1, serial.in_waiting))
                if not data:
                    if not heard and time.monotonic() - start > SILENT_AFTER_S:
                        self.say(
                            f"{self.port}: the board is silent, asleep between readings (serial input does not "
                            f"wake an ESP32): catching its next wake (up to {wait_s:.0f} s)"
                        )
                        heard = True
                    continue
                heard = True
                next_try = min(next_try, sent + CATCH_ANSWER_S)
                seen += data
                if b"KeyboardInterrupt" in seen:
                    self.was_running = True
                if banner in seen:
                    return self._settle(banner)
                seen = seen[-len(banner) :]
            return False
        finally:
            serial.timeout = 0.05

    def _settle(self, banner: bytes) -> bool:
        """Ask for the raw REPL's banner once more once the board is quiet, until exactly its
        ">" prompt is left unread: a slow board may still answer an earlier attempt, and
        mpremote must find one prompt, not two."""
        serial = self.transport.serial
        for _ in range(5):
            while self._read_for(0.3):
                pass
            serial.write(b"\x01")
            seen = b""
            until = time.monotonic() + 5
            while time.monotonic() < until and not seen.endswith(banner):
                seen += serial.read(1)
            time.sleep(0.3)
            if seen.endswith(banner) and serial.in_waiting == 1:
                return True
        return False

    def __enter__(self) -> "Board":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Hand the board back: its app running again if it was running when caught."""
        from mpremote.transport import TransportError

        try:
            if not self.released and self.was_running:
                try:
                    self.soft_reset()
                except (TransportError, OSError):
                    # The command's own error (a pulled cable, a second program) says what happened.
                    self.say(f"{self.port}: the board could not be handed back; press its reset button")
            elif not self.released:
                if self.transport.in_raw_repl:
                    self.transport.exit_raw_repl()
                if self.watchdog_held:
                    self.say(
                        f"{self.port}: the board was at its REPL and is left there (its watchdog re-armed for "
                        f"{HOLD_WDT_MS // 60000} min); `dhtlink reset --soft -p {self.port}` starts the app"
                    )
        finally:
            self.transport.close()

    def leave_at_repl(self) -> None:
        """Leave the board at its friendly REPL, the watchdog still held, for another program."""
        self.transport.exit_raw_repl()
        self.released = True

    def exec(self, code: str) -> str:
        from mpremote.transport import TransportError

        try:
            return self.transport.exec(code).decode("utf-8", "replace")
        except TransportError as error:
            raise CommandError(f"the board raised: {str(error).strip()[-300:]}") from None

    def eval(self, expression: str) -> Any:
        return self.transport.eval(expression)

    def read_file(self, path: str) -> bytes | None:
        if not self.exists(path):
            return None
        return self.transport.fs_readfile(path)

    def exists(self, path: str) -> bool:
        out = self.exec(f"import os\ntry:\n os.stat({path!r})\n print(1)\nexcept OSError:\n print(0)")
        return out.strip() == "1"

    def sha256(self, path: str) -> str | None:
        if not self.exists(path):
            return None
        return self.transport.fs_hashfile(path, "sha256").hex()

    def write_file(self, path: str, data: bytes, progress: Callable[[int, int], Any] | None = None) -> None:
        """Write to a temporary name, check it, then rename: a cut never leaves a half file."""
        temporary = path + ".part"
        self.transport.fs_writefile(temporary, data, progress_callback=progress)
        if self.sha256(temporary) != hashlib.sha256(data).hexdigest():
            self.remove(temporary)
            raise CommandError(f"{path}: the copy on the board does not match; nothing was replaced")
        self.exec(f"import os\nos.rename({temporary!r}, {path!r})")

    def remove(self, path: str) -> None:
        self.exec(f"import os\ntry:\n os.remove({path!r})\nexcept OSError:\n pass")

    def listdir(self) -> list[str]:
        return json.loads(self.exec("import os, json\nprint(json.dumps(os.listdir()))"))

    def mpy_version(self) -> tuple[int, int]:
        """(mpy version, sub-version) the board's MicroPython loads."""
        value = int(self.eval("__import__('sys').implementation._mpy"))
        return value & 0xFF, (value >> 8) & 3

    def soft_reset(self) -> None:
        """Ctrl-D at the friendly REPL: a fresh interpreter that runs boot.py and main.py;
        the watchdog keeps running through it (the app re-arms its own at start)."""
        self.transport.exit_raw_repl()
        self.transport.serial.write(b"\x04")
        self.transport.read_until(1, b"soft reboot\r\n", timeout=5)
        self.released = True

    def hard_reset(self) -> None:
        """machine.reset(): the chip reboots (stopping the watchdog) and runs boot.py and main.py."""
        self.transport.serial.write(b"import machine\r\nmachine.reset()\r\n\x04")
        self.transport.in_raw_repl = False
        self.released = True


def probe(port: str, wait_s: float = 2) -> str | None:
    """The MicroPython version answering on port, or None."""
    try:
        with Board(port, wait_s=wait_s, say=None) as board:
            return str(board.eval(VERSION_EXPRESSION))
    except (CommandError, OSError):
        return None
