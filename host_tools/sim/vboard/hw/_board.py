# Shared state of the virtual board's hardware, kept by the chip (_chip.read/write,
# .vboard/ beside the board's flash) so it survives the process ending, as deep sleep,
# resets and power cuts end it.
#
# Two clocks, chosen when the board is installed:
# - shared (state "virtual_ms"): the board's world has its own time, which moves only
#   when the board sleeps or waits on modelled hardware (Wi-Fi association, scans, NTP).
#   Awake CPU time costs no virtual time, so the same scenario gives the same readings,
#   batches and bytes however busy the host is.
# - compressed (state "compressed"): real time plus skew; sleeping adds to the skew
#   instead of waiting, and dates stay real for a receiver with a wall clock.
# The RTC reads the board's time + rtc_offset_ms (0 once set; 2000-01-01 after a power cut).
import json
import utime
import _chip

state = {}  # type: dict
scenario = {}  # type: dict


def _load(name, default):
    try:
        return json.loads(_chip.read(name))
    except (OSError, ValueError):
        return default


def load():
    global state, scenario
    state = _load("state.json", {})
    scenario = _load("scenario.json", {})
    state["boot_ms"] = now_ms()  # ticks_ms() counts from this boot


def real_us():
    return utime.ticks_us()


# Real (host) time since the hardware came up: the bench's CPU time of a wake, without
# the interpreter's start and without the virtual sleeps (_chip sets it once confined).
boot_real_us = real_us()


def save():
    _chip.dump("state.json", state)


def real_ms():
    return utime.time_ns() // 1000000


def now_ms():
    """True virtual time, Unix ms: what the simulated world's clocks read."""
    if "virtual_ms" in state:
        return state["virtual_ms"]
    return real_ms() + state.get("skew_ms", 0)


def epoch_ms():
    # Compressed mode (an external receiver with a real clock): sleeps are skipped,
    # but the date stays real so the receiver accepts the timestamps.
    return real_ms() if state.get("compressed") else now_ms()


def rtc_ms():
    """What the board's RTC reads: set or not, see rtc_offset_ms."""
    return epoch_ms() + state.get("rtc_offset_ms", 0)


def advance(ms, **changes):
    """Move the board's time on by ms, applying `changes` to the state in the same write
    (deep sleep disarms the watchdog in the write that moves the clock past it)."""
    for key in changes:
        if changes[key] is None:
            state.pop(key, None)
        else:
            state[key] = changes[key]
    if ms > 0:
        if "virtual_ms" in state:
            state["virtual_ms"] += int(ms)
        else:
            state["skew_ms"] = state.get("skew_ms", 0) + int(ms)
    if ms > 0 or changes:
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
