# Virtual `time`: the firmware's clock on the virtual board. Sleeps advance the
# virtual clock at once; see _board.py. As on the ESP32 port, time() counts seconds from
# 2000-01-01 (MICROPY_EPOCH_IS_2000: the ports' default, which the Unix port overrides
# with 1970), and gmtime/localtime/mktime count from there too (no time zones).
import utime
import _board

EPOCH_2000 = 946684800  # Unix seconds at 2000-01-01


def time():
    return _board.rtc_ms() // 1000 - EPOCH_2000


def time_ns():
    return (_board.rtc_ms() - EPOCH_2000 * 1000) * 1000000


def gmtime(secs=None):
    return utime.gmtime((time() if secs is None else secs) + EPOCH_2000)


localtime = gmtime


def mktime(t):
    import machine

    return machine._utc_seconds(t[0], t[1], t[2]) + t[3] * 3600 + t[4] * 60 + t[5] - EPOCH_2000


def ticks_ms():
    return (_board.now_ms() - _board.state.get("boot_ms", 0)) & 0x3FFFFFFF


def ticks_us():
    return (ticks_ms() * 1000) & 0x3FFFFFFF


ticks_add = utime.ticks_add
ticks_diff = utime.ticks_diff


def sleep_ms(ms):
    import machine

    machine._check_wdt(ms)
    _board.advance(ms)


def sleep_us(us):
    sleep_ms(us // 1000)


def sleep(s):
    sleep_ms(int(s * 1000))
