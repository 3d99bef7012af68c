# Virtual `time`: the firmware's clock on the virtual board. Sleeps advance the
# virtual clock at once; see _board.py.
import utime
import _board

gmtime = utime.gmtime
localtime = utime.localtime
mktime = utime.mktime


def time():
    return _board.rtc_ms() // 1000


def time_ns():
    return _board.rtc_ms() * 1000000


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
