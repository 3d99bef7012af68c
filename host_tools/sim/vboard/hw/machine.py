# Virtual `machine` for the ESP32 API the firmware uses. Deep sleep and reset end
# the process with a status the runner reads to boot the board again.
import sys
import _board
import _chip

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

EXIT_DEEPSLEEP = 75
EXIT_RESET = 76
EXIT_WDT = 77

_rtc_memory = None
_wdt = None


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 2

    def __init__(self, pin, mode=-1, pull=-1, value=None):
        self.pin = pin
        self._value = value or 0

    def value(self, v=None):
        if v is None:
            return self._value
        self._value = v


class WDT:
    def __init__(self, id=0, timeout=5000):
        global _wdt
        self.timeout = timeout
        _wdt = self
        self.feed()

    def feed(self):
        # Saved with the real time too: the board's clock stands still while it computes,
        # so the runner resets a board that hangs without sleeping by the real time since.
        self.fed_ms = _board.now_ms()
        _board.state["wdt"] = [self.timeout, self.fed_ms, _board.real_ms()]
        _board.save()


def _check_wdt(extra_ms=0):
    # A watchdog that is not fed within its timeout resets the chip.
    if _wdt is not None and _board.now_ms() + extra_ms - _wdt.fed_ms > _wdt.timeout:
        _board.advance(_wdt.timeout - (_board.now_ms() - _wdt.fed_ms), wdt=None)
        _exit(EXIT_WDT)


RTC_FILE = "rtc_memory.bin"


class RTC:
    def memory(self, data=None):
        global _rtc_memory
        if data is None:
            if _rtc_memory is None:
                try:
                    _rtc_memory = _chip.read(RTC_FILE, True)
                except OSError:
                    _rtc_memory = b""
            return _rtc_memory
        if len(data) > 2048:
            raise ValueError("RTC memory holds 2048 bytes")
        _rtc_memory = bytes(data)

    def datetime(self, dt=None):
        import utime

        if dt is None:
            t = utime.gmtime(_board.rtc_ms() // 1000)
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)
        secs = _utc_seconds(dt[0], dt[1], dt[2]) + dt[4] * 3600 + dt[5] * 60 + dt[6]
        _board.state["rtc_offset_ms"] = secs * 1000 - _board.epoch_ms()
        _board.save()


def _utc_seconds(y, m, d):
    # Days from the civil date (H. Hinnant's algorithm); mktime would apply the host's zone.
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return (era * 146097 + doe - 719468) * 86400


def _exit(status):
    import utime

    # Every reset stops the watchdog; the next boot's firmware arms it again.
    _board.state.pop("wdt", None)
    # Host time, kept apart from the state the next boot loads: a figure whose digits vary
    # with the host's load must not change what the firmware's heap holds.
    _chip.write("wake_real_us", str(utime.ticks_diff(utime.ticks_us(), _board.boot_real_us)))
    if _rtc_memory is not None:
        _chip.write(RTC_FILE, _rtc_memory)
    _board.save()
    sys.exit(status)


def deepsleep(ms=0):
    # Disarmed in the same write that moves the clock on: a runner reading the state
    # between this write and the process's end never sees an armed watchdog overdue.
    _board.advance(ms, sleep_ms=ms, wdt=None)
    _exit(EXIT_DEEPSLEEP)


def lightsleep(ms=0):
    _check_wdt(ms)
    _board.advance(ms)


def reset():
    _exit(EXIT_RESET)


def soft_reset():
    _exit(EXIT_RESET)


def reset_cause():
    return _board.state.get("reset_cause", PWRON_RESET)


def unique_id():
    return _board.state.get("unique_id", "000000000000").encode()


def idle():
    pass


def freq(hz=None):
    return 240000000
