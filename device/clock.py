# Wall-clock time. The ESP32 RTC keeps time through deep sleep but restarts at
# 2000-01-01 after power loss, so "valid" means "set since the last power loss".
# Readings taken before that carry the raw clock and are converted once it is set.
import time
import machine

# Some ports count from 2000, the Unix port from 1970.
OFFSET = 0 if time.gmtime(0)[0] == 1970 else 946684800
MIN_VALID = 1704067200  # 2024-01-01: anything earlier is a clock that was never set


def unix():
    return int(time.time()) + OFFSET


def valid():
    return unix() > MIN_VALID


def set_unix(ts, spool):
    """Set the RTC to Unix time ts; readings stored unsynced become convertible."""
    if not valid():
        spool.set_clock_offset(ts - unix())
    tm = time.gmtime(ts - OFFSET)
    machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))


def ntp(spool, deadline=None, tries=2):
    """Set the clock by NTP. deadline (ticks_ms): the NTP server's name is looked up by
    dns.py no later than then (ntptime's own getaddrinfo is lwIP's, without a timeout)."""
    import ntptime

    if deadline is not None:
        import dns
        import sys

        try:
            ntptime.host = dns.address(ntptime.host, deadline)
        except OSError:
            return False
        finally:
            del sys.modules["dns"]
    for _ in range(tries):
        before = unix()
        was_valid = valid()
        try:
            ntptime.settime()
        except (OSError, OverflowError):
            continue
        if not was_valid and valid():
            spool.set_clock_offset(unix() - before)
        return True
    return False
