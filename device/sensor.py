# DHT11/DHT22 reads with the datasheet's timing rules, retries and frame checks.
# A failed read returns None and is counted by the caller: never a stale value.
import time

try:
    import dht
    import machine
except ImportError:  # CircuitPython, or CPython with Blinka
    dht = None  # type: ignore[assignment]

MIN_INTERVAL_MS = {"DHT22": 2000, "DHT11": 1000}
POWER_UP_MS = {"DHT22": 2000, "DHT11": 1000}
RANGE = {"DHT22": (-400, 800, 0, 1000), "DHT11": (0, 500, 200, 900)}


class _Adafruit:
    # adafruit_dht exposes properties that raise RuntimeError on a bad frame.
    def __init__(self, kind, pin):
        import adafruit_dht
        import board

        cls = adafruit_dht.DHT22 if kind == "DHT22" else adafruit_dht.DHT11
        self.dev = cls(getattr(board, "D%d" % pin) if isinstance(pin, int) else pin, use_pulseio=False)

    def measure(self):
        try:
            self.t = self.dev.temperature
            self.h = self.dev.humidity
        except RuntimeError as e:
            raise OSError(str(e)) from None
        if self.t is None or self.h is None:
            raise OSError("no data")

    def temperature(self):
        return self.t

    def humidity(self):
        return self.h


class Sensor:
    def __init__(self, kind, pin, powered_up_ms=0, driver=None):
        self.kind = kind
        if driver is not None:
            self.dev = driver
        elif dht is not None:
            cls = dht.DHT22 if kind == "DHT22" else dht.DHT11
            self.dev = cls(machine.Pin(pin))
        else:
            self.dev = _Adafruit(kind, pin)
        # Earliest tick at which the sensor may be read: after power-up, then MIN_INTERVAL apart.
        self.ready = time.ticks_add(time.ticks_ms(), max(0, POWER_UP_MS[kind] - powered_up_ms))
        self.errors = 0
        self.last_error = None

    def _wait(self):
        left = time.ticks_diff(self.ready, time.ticks_ms())
        if left > 0:
            time.sleep_ms(left)
        self.ready = time.ticks_add(time.ticks_ms(), MIN_INTERVAL_MS[self.kind])

    def read(self, tries=3):
        """(t10, h10) in tenths of C and %RH, or None after `tries` failed reads."""
        lo_t, hi_t, lo_h, hi_h = RANGE[self.kind]
        for _ in range(tries):
            self._wait()
            try:
                self.dev.measure()
                t10 = int(round(self.dev.temperature() * 10))
                h10 = int(round(self.dev.humidity() * 10))
            except Exception as e:  # noqa: BLE001 - dht.py raises a plain Exception("checksum error")
                # The ESP32's dht is micropython-lib's dht.py over the C dht_readinto: a
                # timeout is OSError(ETIMEDOUT), a bad frame Exception("checksum error").
                self.errors += 1
                self.last_error = "read failed: %s" % (e.args[0] if e.args else type(e).__name__)
                continue
            if t10 == 0 and h10 == 0:
                self.last_error = "all-zero frame"  # a known-bad frame of a sensor losing power
            elif not (lo_t <= t10 <= hi_t and lo_h <= h10 <= hi_h):
                self.last_error = "out of range: t=%d h=%d (tenths)" % (t10, h10)
            else:
                return t10, h10
            self.errors += 1
        return None
