"""`dhtlink logs`: the code the command runs (follow), fed the reads a board gives."""

from contextlib import nullcontext

from host_tools.serial import logs
from host_tools.serial.files import LOG, OLD_LOG


class LogBoard:
    """A board whose log files change from one poll to the next, as the app writes them."""

    def __init__(self, polls: list[dict[str, bytes]], epoch_year: str = "2000") -> None:
        self.polls = polls
        self.epoch_year = epoch_year
        self.files: dict[str, bytes] = {}

    def open(self):
        self.files = self.polls.pop(0)
        return nullcontext(self)

    def read_file(self, name: str) -> bytes | None:
        return self.files.get(name)

    def exec(self, code: str) -> str:
        assert code == logs.EPOCH_PROBE
        return self.epoch_year + "\r\n"


def follow(board: LogBoard, polls: int) -> str:
    out: list[str] = []
    sleeps = iter(range(polls - 1))

    def sleep(_: float) -> None:
        if next(sleeps, None) is None:
            raise KeyboardInterrupt

    try:
        logs.follow(board.open, once=polls == 1, write=out.append, sleep=sleep)
    except KeyboardInterrupt:
        pass
    return "".join(out)


def lines(start: int, stop: int) -> bytes:
    return b"".join(b"%d I cycle %d\n" % (600 + n, n) for n in range(start, stop))


def test_times_are_iso_utc_on_the_esp32_epoch_and_on_the_unix_one():
    assert follow(LogBoard([{LOG: b"269 I boot 1\n"}]), 1) == "2000-01-01T00:04:29Z I boot 1\n"
    unix = LogBoard([{LOG: b"1795389990 W wifi down\n"}], epoch_year="1970")
    assert follow(unix, 1) == "2026-11-22T23:26:30Z W wifi down\n"


def test_follow_prints_every_line_once_across_a_rotation_and_a_torn_read():
    first = lines(0, 30)
    polls = [
        {LOG: first},
        {LOG: first + lines(30, 31) + b"631 I half a li"},  # a line caught while being written
        {LOG: first + lines(30, 32)},
        # read on either side of a rotation: the old log.1.txt, then the new, short log.txt
        {OLD_LOG: lines(0, 10), LOG: lines(32, 33)},
        {OLD_LOG: first + lines(30, 33), LOG: lines(33, 35)},
    ]
    printed = follow(LogBoard(polls), len(polls)).splitlines()
    assert len(printed) == len(set(printed)) == 35
    assert printed[-1].endswith("I cycle 34") and "half a li" not in "".join(printed)


def test_added_keeps_to_whole_lines_and_what_is_new():
    assert logs.added(b"", b"a\nb\npart") == b"a\nb\n"
    assert logs.added(b"a\nb\n", b"a\nb\nc\n") == b"c\n"
    # A rotation: log.txt becomes log.1.txt whole, the old log.1.txt is gone.
    old_log1, old_log = lines(0, 40), lines(40, 80)
    assert logs.added(old_log1 + old_log, old_log + b"fresh\n") == b"fresh\n"
    assert logs.added(b"gone\n", b"unrelated\n") == b"unrelated\n"
