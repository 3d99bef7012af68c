"""`dhtlink logs`: the stored log's times, and the live lines `logs --follow` shows."""

import re
import time

from host_tools.serial import logs
from host_tools.serial.files import LOG, OLD_LOG


class LogBoard:
    def __init__(self, files: dict[str, bytes], epoch_year: str = "2000") -> None:
        self.files = files
        self.epoch_year = epoch_year

    def read_file(self, name: str) -> bytes | None:
        return self.files.get(name)

    def exec(self, code: str) -> str:
        assert code == logs.EPOCH_PROBE
        return self.epoch_year + "\r\n"


def printed(board: LogBoard) -> str:
    out: list[str] = []
    logs.print_log(board, write=out.append)  # type: ignore[arg-type]
    return "".join(out)


def test_times_are_iso_utc_on_the_esp32_epoch_and_on_the_unix_one():
    assert printed(LogBoard({LOG: b"269 I boot 1\n"})) == "2000-01-01T00:04:29Z I boot 1\n"
    unix = LogBoard({LOG: b"1795389990 W wifi down\n"}, epoch_year="1970")
    assert printed(unix) == "2026-11-22T23:26:30Z W wifi down\n"


def test_the_old_file_first_and_never_a_half_written_line():
    board = LogBoard({OLD_LOG: b"1 I a\n", LOG: b"2 I b\n3 I half a li"})
    assert printed(board).splitlines() == ["2000-01-01T00:00:01Z I a", "2000-01-01T00:00:02Z I b"]


class Uart:
    """What a board prints, in the pieces a serial port delivers it."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    @property
    def in_waiting(self) -> int:
        return len(self.pieces[0]) if self.pieces else 0

    def read(self, _n: int) -> bytes:
        if self.pieces:
            return self.pieces.pop(0)
        time.sleep(0.05)
        return b""


def test_live_lines_get_the_time_they_arrived_and_the_boards_clock_only_when_it_is_off():
    now = int(time.time())
    esp32_now = now - logs.EPOCH_2000
    pieces = [
        b"rst:0x5 (DEEPSLEEP_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n",
        b"%d I read 21.5 C 40.1 %%, 3 un" % esp32_now,
        b"sent\r\n%d I sent 3 readings\r\n" % now,
        b"12 W clock not set\r\nno newline at the end",
    ]
    uart = Uart(pieces)
    out: list[str] = []
    deadline = time.monotonic() + 5
    logs.watch(uart, write=out.append, until=lambda: len(out) == 5 or time.monotonic() > deadline)
    assert all(re.match(r"\[\d\d:\d\d:\d\d\] ", line) for line in out), out
    body = [line[11:] for line in out]
    assert body == [
        "rst:0x5 (DEEPSLEEP_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\n",
        "I read 21.5 C 40.1 %, 3 unsent\n",
        "I sent 3 readings\n",
        "W clock not set  (board clock 2000-01-01T00:00:12Z)\n",
        "no newline at the end\n",
    ]
