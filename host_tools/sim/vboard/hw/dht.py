# Virtual DHT11/DHT22. Values come from the scenario: an explicit list
# ("sensor_values", one [t, h] per read), else a daily cycle (temperature peaks
# mid-afternoon, humidity moves against it) with seeded noise. Faults:
# "sensor_fail" time ranges and "sensor_fail_rate" (0..1), raising OSError the
# way the real driver does on a timeout or checksum error.
import math
import _board


class _DHT:
    def __init__(self, pin):
        self.pin = pin
        self._t = None
        self._h = None

    def measure(self):
        sc = _board.scenario
        n = _board.state.get("sensor_reads", 0)
        _board.state["sensor_reads"] = n + 1
        if _board.in_ranges("sensor_fail") or _noise(n, 7) < sc.get("sensor_fail_rate", 0):
            raise OSError(110 if n % 2 else 5)  # ETIMEDOUT, or EIO on a checksum error
        values = sc.get("sensor_values")
        if values:
            self._t, self._h = values[n % len(values)]
            return
        day = 2 * math.pi * ((_board.now_ms() // 1000) % 86400) / 86400
        swing = math.sin(day - 2.0)  # peaks about 15:00 UTC
        t = sc.get("t_mean", 21.0) + sc.get("t_swing", 4.0) * swing + (_noise(n, 1) - 0.5)
        self._t = round(t, 1)
        h = sc.get("h_mean", 55.0) - 12.0 * swing + 2 * (_noise(n, 2) - 0.5)
        self._h = round(min(100.0, max(0.0, h)), 1)

    def temperature(self):
        return self._t

    def humidity(self):
        return self._h


def _noise(n, salt):
    # Deterministic in (seed, read number): the same scenario gives the same values.
    x = (_board.scenario.get("seed", 1) * 1000003 + n * 7919 + salt * 104729) & 0x7FFFFFFF
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return (x >> 8) / float(1 << 23)


class DHT22(_DHT):
    pass


class DHT11(_DHT):
    def measure(self):
        super().measure()
        self._t = float(round(self._t))
        self._h = float(round(self._h))
