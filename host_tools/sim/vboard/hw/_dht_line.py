# The DHT's data line, standing in for drivers/dht/dht.c of micropython/micropython
# (machine.dht_readinto, extmod/modmachine.c): the 250 ms + 18 ms start signal, then the
# sensor's 5-byte frame, or OSError(ETIMEDOUT) where the C gives up waiting. dht.py (the
# real micropython-lib driver) checks the frame's checksum and raises its own
# Exception("checksum error"). Values come from the scenario: an explicit list
# ("sensor_values", one [t, h] per read), else a daily cycle (temperature peaks
# mid-afternoon, humidity moves against it) with seeded noise. Faults: "sensor_fail"
# time ranges and "sensor_fail_rate" (0..1); "sensor_fault" says which: "timeout",
# "checksum" (a bit flipped on the wire), or by default the two alternating.
import math
import _board

ETIMEDOUT = 110
START_MS = 268  # dht.c: line high 250 ms, low 18 ms, then the 40-bit frame (~5 ms)


def _values(n):
    sc = _board.scenario
    values = sc.get("sensor_values")
    if values:
        return values[n % len(values)]
    day = 2 * math.pi * ((_board.now_ms() // 1000) % 86400) / 86400
    swing = math.sin(day - 2.0)  # peaks about 15:00 UTC
    t = sc.get("t_mean", 21.0) + sc.get("t_swing", 4.0) * swing + (_noise(n, 1) - 0.5)
    h = sc.get("h_mean", 55.0) - 12.0 * swing + 2 * (_noise(n, 2) - 0.5)
    return round(t, 1), round(min(100.0, max(0.0, h)), 1)


def frame(kind, t, h):
    """The 5 bytes a DHT11 ("DHT11": whole degrees and %RH) or DHT22 sends."""
    if kind == "DHT11":
        b = [int(round(h)) & 0xFF, 0, int(round(t)) & 0xFF, 0]
    else:
        h10 = int(round(h * 10))
        t10 = int(round(abs(t) * 10))
        b = [h10 >> 8, h10 & 0xFF, (t10 >> 8) | (0x80 if t < 0 else 0), t10 & 0xFF]
    return b + [sum(b) & 0xFF]


def _wired():
    # The sensor wired to the board: the scenario's "sensor_kind", else the one the board
    # is set up for (remote settings first, then config.json: whoever changed the type
    # changed the sensor too). Read once, as the chip starts: settings take effect at a
    # boot, and reading the files at every read would fill the firmware's heap mid-wake
    # with garbage the chip's C driver never makes.
    kind = _board.scenario.get("sensor_kind")
    if kind is not None:
        return kind
    import json

    for name, key in (("settings.json", "sensor.type"), ("config.json", "sensor")):
        try:
            with open(name) as f:
                value = json.loads(f.read()).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, dict):
            value = value.get("type")
        if value:
            return value
    return "DHT22"


KIND = _wired()


def readinto(buf, line_ok=True):
    """One read of the sensor on the line into buf (5 bytes). line_ok: the pin can drive
    the line (an input-only pin never pulls it low, so the sensor never answers)."""
    _board.advance(START_MS)
    sc = _board.scenario
    n = _board.state.get("sensor_reads", 0)
    _board.state["sensor_reads"] = n + 1
    failing = _board.in_ranges("sensor_fail") or _noise(n, 7) < sc.get("sensor_fail_rate", 0)
    fault = sc.get("sensor_fault") or ("timeout" if n % 2 else "checksum")
    if not line_ok or (failing and fault == "timeout"):
        raise OSError(ETIMEDOUT)
    t, h = _values(n)
    b = frame(KIND, t, h)
    if failing:
        b[3] ^= 0x04  # a bit misread on the wire: the checksum no longer matches
    for i in range(5):
        buf[i] = b[i]


def _noise(n, salt):
    # Deterministic in (seed, read number): the same scenario gives the same values.
    x = (_board.scenario.get("seed", 1) * 1000003 + n * 7919 + salt * 104729) & 0x7FFFFFFF
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return (x >> 8) / float(1 << 23)
