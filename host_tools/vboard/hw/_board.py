# Shared state of the virtual board's hardware, kept under .vboard/ in the board
# directory (the process's cwd) so it survives the process ending, as deep sleep,
# resets and power cuts end it.
#
# Virtual time = real time + skew. Sleeping adds to skew instead of waiting, so an
# hour of 60 s cycles runs in seconds; awake time passes for real. The RTC reads
# virtual time + rtc_offset_ms (0 once set; 2000-01-01 after a power cut).
import json
import utime

DIR = ".vboard/"
state = {}
scenario = {}


def _load(name, default):
    try:
        with open(DIR + name) as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return default


def load():
    global state, scenario
    state = _load("state.json", {})
    scenario = _load("scenario.json", {})
    state["boot_ms"] = now_ms()  # ticks_ms() counts from this boot


# Real (host) time since the hardware was first imported: the bench's CPU time of a wake,
# without the interpreter's start and without the virtual sleeps.
boot_real_us = utime.ticks_us()


def save():
    tmp = DIR + "state.tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(state))
    import os

    os.rename(tmp, DIR + "state.json")


def real_ms():
    return utime.time_ns() // 1000000


def now_ms():
    """True virtual time, Unix ms: what the simulated world's clocks read."""
    return real_ms() + state.get("skew_ms", 0)


def epoch_ms():
    # Compressed mode (an external receiver with a real clock): sleeps are skipped,
    # but the date stays real so the receiver accepts the timestamps.
    return real_ms() if state.get("compressed") else now_ms()


def rtc_ms():
    """What the board's RTC reads: set or not, see rtc_offset_ms."""
    return epoch_ms() + state.get("rtc_offset_ms", 0)


def advance(ms):
    if ms > 0:
        state["skew_ms"] = state.get("skew_ms", 0) + int(ms)
        save()


def since_start_s():
    return (now_ms() - state.get("start_ms", now_ms())) / 1000


def in_ranges(key):
    t = since_start_s()
    for lo, hi in scenario.get(key, ()):
        if lo <= t < hi:
            return True
    return False


load()
