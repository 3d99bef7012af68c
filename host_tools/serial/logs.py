"""`dhtlink logs`: the firmware's rotating log (log.1.txt, then log.txt), with each line's
board time shown as an ISO 8601 UTC time; `dhtlink logs --follow`: what the board prints
on its serial line, live, without interrupting it (as `esphome logs` does)."""

import datetime as dt
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from host_tools.serial.board import BoardFiles
from host_tools.serial.files import LOG, OLD_LOG

# Where the board's time.time() starts: 2000-01-01 on the ESP32 port, 1970 on the Unix port.
EPOCH_PROBE = "import time\nprint(time.gmtime(0)[0])"
EPOCH_2000 = 946684800
LINE_TIME = re.compile(rb"^(\d+)(?= )", re.MULTILINE)


def read_log(board: BoardFiles) -> bytes:
    return (board.read_file(OLD_LOG) or b"") + (board.read_file(LOG) or b"")


def epoch_offset(board: BoardFiles) -> int:
    """Seconds to add to the board's time.time() to get Unix time."""
    return 0 if board.exec(EPOCH_PROBE).strip() == "1970" else EPOCH_2000


def complete(text: bytes) -> bytes:
    """The whole lines of text: not a line the app was writing when it was interrupted."""
    return text[: text.rfind(b"\n") + 1]


def with_iso_times(text: bytes, offset: int) -> str:
    """`946685069 I boot 1` -> `2000-01-01T00:04:29Z I boot 1` (a board whose clock was never
    set counts from 2000-01-01, so its early lines show that date)."""

    def iso(match: re.Match[bytes]) -> bytes:
        when = dt.datetime.fromtimestamp(int(match.group(1)) + offset, dt.UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%SZ").encode()

    return LINE_TIME.sub(iso, text).decode("utf-8", "replace")


SILENCE_S = 0.5  # a part line the board printed and nothing after: shown after this long


def open_passive(port: str) -> Any:
    """The port opened without touching the board: DTR and RTS are set low before the port
    opens, so a board whose auto-reset circuit wires them to EN and IO0 is not reset."""
    import serial

    from host_tools.errors import CommandError

    uart = serial.Serial()
    uart.port, uart.baudrate, uart.timeout, uart.exclusive = port, 115200, 0.1, True
    uart.dtr = uart.rts = False
    try:
        uart.open()
    except serial.SerialException as error:
        raise CommandError(f"cannot open {port}: {error}; is another program (a REPL, a monitor) holding it?") from None
    return uart


def human_line(line: str, received: float) -> str:
    """`[03:12:05] I sent 1 readings`: the host's local time the line arrived. An app log
    line's own time (the board's clock: seconds since 2000 on the ESP32, since 1970 on the
    Unix port) is shown only when the board's clock is off by more than a minute."""
    stamp = time.strftime("%H:%M:%S", time.localtime(received))
    match = LIVE_TIME.match(line)
    if match:
        board = int(match.group(1))
        board += EPOCH_2000 if board < EPOCH_2000 else 0  # unambiguous until 2030
        line = line[match.end() :]
        if abs(board - received) > 60:
            when = dt.datetime.fromtimestamp(board, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            line += f"  (board clock {when})"
    return f"[{stamp}] {line}"


LIVE_TIME = re.compile(r"^(\d+) (?=[IWE] )")


def watch(uart: Any, write: Callable[[str], Any] | None = None, until: Callable[[], bool] = lambda: False) -> None:
    """Print each line the board prints, with the time it arrived, until `until()` (or
    Ctrl-C). Nothing is sent to the board: its app runs and sleeps as if unwatched."""
    pending = b""
    last = time.monotonic()
    while not until():
        chunk = uart.read(max(1, uart.in_waiting))
        now = time.monotonic()
        if chunk:
            pending += chunk
            last = now
        while b"\n" in pending or (pending and now - last > SILENCE_S):
            line, _, pending = pending.partition(b"\n")
            text = line.decode("utf-8", "replace").rstrip("\r")
            if text:
                (write or sys.stdout.write)(human_line(text, time.time()) + "\n")
                sys.stdout.flush()


def print_log(board: BoardFiles, write: Callable[[str], Any] | None = None) -> None:
    """Print the stored log, oldest line first. write defaults to the sys.stdout of the
    moment (a test's capture, a redirect)."""
    text = complete(read_log(board))
    (write or sys.stdout.write)(with_iso_times(text, epoch_offset(board)))
    sys.stdout.flush()
