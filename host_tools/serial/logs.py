"""`dhtlink logs [--follow]`: the firmware's rotating log (log.1.txt, then log.txt), with
each line's board time shown as an ISO 8601 UTC time."""

import datetime as dt
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from host_tools.serial.board import BoardFiles
from host_tools.serial.files import LOG, OLD_LOG

POLL_S = 2
TAIL = 200  # bytes of what was printed that must be found again to place the new part
KEEP = 16384  # bytes of what was printed to remember: more than both log files hold
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
    """The whole lines of text: a line caught while the board writes it waits for the next poll."""
    return text[: text.rfind(b"\n") + 1]


def added(previous: bytes, current: bytes) -> bytes:
    """The whole lines current adds to previous, none of previous's again. The log only
    grows, except that a rotation drops its oldest half, so the new part starts after
    where previous's tail now stands. When that tail is gone (the two files were read on
    either side of a rotation) the lines previous already held are left out."""
    current = complete(current)
    if not previous:
        return current
    tail = previous[-TAIL:]
    at = current.rfind(tail)
    if at >= 0:
        return current[at + len(tail) :]
    printed = set(previous.splitlines(keepends=True))
    return b"".join(line for line in current.splitlines(keepends=True) if line not in printed)


def with_iso_times(text: bytes, offset: int) -> str:
    """`946685069 I boot 1` -> `2000-01-01T00:04:29Z I boot 1` (a board whose clock was never
    set counts from 2000-01-01, so its early lines show that date)."""

    def iso(match: re.Match[bytes]) -> bytes:
        when = dt.datetime.fromtimestamp(int(match.group(1)) + offset, dt.UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%SZ").encode()

    return LINE_TIME.sub(iso, text).decode("utf-8", "replace")


def follow(
    open_board: Callable[[], Any],
    once: bool,
    write: Callable[[str], Any] | None = None,
    sleep: Callable[[float], Any] = time.sleep,
) -> None:
    """Print the log, then (unless once) what each poll adds to it, every line once. The
    board is opened for each poll only, so the app runs between polls. write defaults to
    the sys.stdout of the moment (a test's capture, a redirect)."""
    printed = b""
    offset = None
    while True:
        with open_board() as board:
            if offset is None:
                offset = epoch_offset(board)
            text = read_log(board)
        new = added(printed, text)
        if new:
            (write or sys.stdout.write)(with_iso_times(new, offset))
            sys.stdout.flush()
        # What was printed, not what was read: a read torn by a rotation must not become
        # the reference the next poll is placed against.
        printed = (printed + new)[-KEEP:]
        if once:
            return
        sleep(POLL_S)
