"""Clock rules under MicroPython: both epochs (2000 on ESP32 builds, 1970 on the Unix
port), readings taken before the clock is set converted once it is, NTP retries."""

import datetime

# An ESP32-like clock: time.time() counts seconds since 2000-01-01 and restarts at 0
# after power loss. NOW is kept in a file so the snippet can move it.
FAKE_TIME = """
import utime
Y2K = 946684800
def _now():
    try:
        return int(open("now.txt").read())
    except OSError:
        return 0
def _set(v):
    open("now.txt", "w").write(str(v))
def time():
    return _now()
def gmtime(s=None):
    return utime.gmtime((_now() if s is None else s) + Y2K)
ticks_ms = utime.ticks_ms
ticks_add = utime.ticks_add
ticks_diff = utime.ticks_diff
sleep_ms = utime.sleep_ms
"""
FAKE_MACHINE = """
import json
class RTC:
    def datetime(self, dt=None):
        if dt is not None:
            open("rtc.json", "w").write(json.dumps(dt))
"""
FAKE_NTP = """
import time
fails = int(open("ntp_fails.txt").read())
calls = 0
def settime():
    global calls
    calls += 1
    if calls <= fails:
        raise OSError(110)
    time._set(1795389990 - time.Y2K)
"""


def esp32(mpy, ntp_fails=0):
    mpy.fake("time", FAKE_TIME)
    mpy.fake("machine", FAKE_MACHINE)
    mpy.fake("ntptime", FAKE_NTP)
    (mpy.workdir / "ntp_fails.txt").write_text(str(ntp_fails))


def test_epoch_2000_clock_converts_unsynced_readings_when_set(mpy):
    esp32(mpy)
    out = mpy.json("""
        import json, time, clock, spool
        sp = spool.Spool(100)
        time._set(5)
        before = [clock.OFFSET, clock.unix(), clock.valid()]
        sp.append(clock.unix(), 215, 450, clock.valid())
        time._set(8)
        sp.append(clock.unix(), 216, 451, clock.valid())
        held = sp.peek(10)
        clock.set_unix(1795389990, sp)
        print(json.dumps([before, held, sp.peek(10), json.loads(open("rtc.json").read())]))
    """)
    before, held, converted, rtc = out
    assert before == [946684800, 946684805, False]
    assert held == []  # never sent with a 2000 date
    assert converted == [[0, 1795389987, 215, 450], [1, 1795389990, 216, 451]]
    d = datetime.datetime.fromtimestamp(1795389990, datetime.UTC)
    # machine.RTC().datetime order: year, month, day, weekday, hour, minute, second, subseconds
    assert rtc == [d.year, d.month, d.day, d.weekday(), d.hour, d.minute, d.second, 0]


def test_ntp_retries_and_converts_earlier_readings(mpy):
    esp32(mpy, ntp_fails=1)
    out = mpy.json("""
        import json, time, clock, spool
        sp = spool.Spool(100)
        time._set(100)
        sp.append(clock.unix(), 1, 2, clock.valid())
        time._set(103)
        ok = clock.ntp(sp, tries=2)
        print(json.dumps([ok, clock.valid(), sp.peek(1)]))
    """)
    # NTP set 1795389990 at raw time 103; the reading was taken 3 s before.
    assert out == [True, True, [[0, 1795389987, 1, 2]]]


def test_ntp_gives_up_after_its_tries_and_readings_wait(mpy):
    esp32(mpy, ntp_fails=5)
    out = mpy.json("""
        import json, time, clock, spool, ntptime
        sp = spool.Spool(100)
        time._set(100)
        sp.append(clock.unix(), 1, 2, clock.valid())
        print(json.dumps([clock.ntp(sp, tries=2), ntptime.calls, clock.valid(), sp.peek(1), sp.depth()]))
    """)
    assert out == [False, 2, False, [], 1]


def test_unix_port_epoch_1970(mpy):
    import time

    out = mpy.json("""
        import json, clock
        print(json.dumps([clock.OFFSET, clock.unix(), clock.valid()]))
    """)
    assert out[0] == 0 and out[2] is True
    assert abs(out[1] - time.time()) < 5
