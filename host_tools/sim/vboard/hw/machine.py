# Virtual `machine` for the ESP32 API the firmware uses, after ports/esp32/ of
# micropython/micropython (docs/virtual-board.md has the table). Deep sleep and reset
# end the process with a status the runner reads to boot the board again; the reset
# cause the next boot reads is modmachine.c's mp_machine_reset_cause(): machine.reset()
# and a panic are ESP_RST_SW/ESP_RST_PANIC, so HARD_RESET; only a soft reboot (Ctrl-D,
# machine.soft_reset()) is SOFT_RESET.
import sys
import _board
import _chip
import _dht_line

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

EXIT_DEEPSLEEP = 75
EXIT_RESET = 76
EXIT_WDT = 77
EXIT_SOFT_RESET = 78

_rtc_memory = None
_wdt = None


# The GPIOs of a classic ESP32 without SPI RAM (ports/esp32/machine_pin.h, the
# CONFIG_IDF_TARGET_ESP32 block): anything else is machine_pin.c's "invalid pin".
GPIOS = tuple(range(0, 24)) + (25, 26, 27) + tuple(range(32, 40))
INPUT_ONLY = (34, 35, 36, 37, 38, 39)  # no output driver (GPIO_IS_VALID_OUTPUT_GPIO)
FLASH = (6, 7, 8, 9, 10, 11)  # wired to the module's SPI flash


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 2

    def __init__(self, pin, mode=-1, pull=-1, value=None):
        if pin not in GPIOS:
            raise ValueError("invalid pin")
        if pin in INPUT_ONLY and mode != -1 and mode & 2:  # GPIO_MODE_DEF_OUTPUT
            raise ValueError("pin can only be input")
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


def dht_readinto(pin, buf):
    """extmod/modmachine.c's machine.dht_readinto (drivers/dht/dht.c), over _dht_line."""
    if not isinstance(pin, Pin):
        raise TypeError("expecting a pin")
    if len(buf) < 5:
        raise ValueError("buffer too small")
    if pin.pin in FLASH:
        # Driving a flash line stops the chip fetching its code: a panic (ESP_RST_PANIC).
        print("Guru Meditation Error: Core  1 panic'ed (IllegalInstruction)")
        _exit(EXIT_RESET)
    _check_wdt(_dht_line.START_MS)
    _dht_line.readinto(buf, pin.pin not in INPUT_ONLY)


def _check_wdt(extra_ms=0):
    # A watchdog that is not fed within its timeout resets the chip.
    if _wdt is not None and _board.now_ms() + extra_ms - _wdt.fed_ms > _wdt.timeout:
        _board.advance(_wdt.timeout - (_board.now_ms() - _wdt.fed_ms), wdt=None)
        _exit(EXIT_WDT)


RTC_FILE = "rtc_memory.bin"
# machine_rtc.c: MICROPY_HW_RTC_USER_MEM_MAX, the user's share of RTC slow memory.
RTC_USER_MEM_MAX = 2048


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
        if len(data) > RTC_USER_MEM_MAX:
            raise ValueError("buffer too long")  # machine_rtc.c's words
        _rtc_memory = bytes(data)
        # RTC_NOINIT memory: written at once, so it survives a watchdog reset or a panic
        # that ends the wake without warning (only power loss clears it).
        _chip.write(RTC_FILE, _rtc_memory)

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

    # A chip reset (deep sleep, reset, the watchdog's own) stops the watchdog and the next
    # boot's firmware arms it again; a soft reset does not reset the chip, and the ESP-IDF
    # task watchdog keeps running through it (ports/esp32/main.c's soft_reset: leaves it).
    if status != EXIT_SOFT_RESET:
        _board.state.pop("wdt", None)
    # Host time, kept apart from the state the next boot loads: a figure whose digits vary
    # with the host's load must not change what the firmware's heap holds.
    _chip.write("wake_real_us", str(utime.ticks_diff(utime.ticks_us(), _board.boot_real_us)))
    _board.save()
    sys.exit(status)


def deepsleep(ms=0):
    # Disarmed in the same write that moves the clock on: a runner reading the state
    # between this write and the process's end never sees an armed watchdog overdue.
    _board.advance(ms, sleep_ms=ms, wdt=None)
    _exit(EXIT_DEEPSLEEP)


def lightsleep(ms=0):
    # ESP-IDF powers the radio down in light sleep and keeps no Wi-Fi association through
    # it ("Sleep Modes": connections are not maintained in Deep-sleep or Light-sleep).
    _check_wdt(ms)
    _board.advance(ms, radio_off_ms=_board.now_ms() + ms, wifi="down")


def reset():
    _exit(EXIT_RESET)


def soft_reset():
    _exit(EXIT_SOFT_RESET)


def reset_cause():
    return _board.state.get("reset_cause", PWRON_RESET)


def unique_id():
    return _board.state.get("unique_id", "000000000000").encode()


def idle():
    pass


def freq(hz=None):
    return 240000000
