"""Sensor rules under MicroPython (fake dht driver: GPIO cannot exist here) and the
adafruit_dht adapter under CPython with a fake pin."""

import importlib
import sys
from pathlib import Path

import pytest

FAKE_DHT = """
import json
script = json.loads(open("frames.json").read())
class _DHT:
    def __init__(self, pin):
        self.n = 0
    def measure(self):
        frame = script[self.n % len(script)]
        self.n += 1
        if frame is None:
            raise OSError(110)  # dht.c's timeout
        if frame == "checksum":
            raise Exception("checksum error")  # micropython-lib's dht.py on a bad frame
        self.t, self.h = frame
    def temperature(self):
        return self.t
    def humidity(self):
        return self.h
DHT22 = _DHT
DHT11 = _DHT
"""
FAKE_MACHINE = """
class Pin:
    def __init__(self, n):
        self.n = n
"""


def read(mpy, frames, kind="DHT22", reads=1):
    import json

    mpy.fake("dht", FAKE_DHT)
    mpy.fake("machine", FAKE_MACHINE)
    (mpy.workdir / "frames.json").write_text(json.dumps(frames))
    return mpy.json(f"""
        import json, time, sensor
        s = sensor.Sensor({kind!r}, 4, powered_up_ms=10000)
        out = []
        t0 = time.ticks_ms()
        for _ in range({reads}):
            out.append(s.read())
        print(json.dumps([out, s.errors, s.last_error, time.ticks_diff(time.ticks_ms(), t0)]))
    """)


def test_good_frame_in_tenths(mpy):
    assert read(mpy, [[21.4, 45.2]])[0] == [[214, 452]]


def test_a_checksum_error_is_retried_and_counted(mpy):
    values, errors, last, _ = read(mpy, ["checksum", [21.0, 40.0]])
    assert values == [[210, 400]]
    assert errors == 1 and last == "read failed: checksum error"


def test_retries_then_gives_up_without_a_stale_value(mpy):
    values, errors, last, _ = read(mpy, [[21.0, 40.0], None, None, None], reads=2)
    assert values == [[210, 400], None]
    assert errors == 3 and "read failed" in last


def test_rejects_out_of_range_and_all_zero_frames(mpy):
    values, errors, last, _ = read(mpy, [[0, 0], [85.0, 40.0], [20.0, 40.0]])
    assert values == [[200, 400]] and errors == 2


def test_dht11_range(mpy):
    values, _, last, _ = read(mpy, [[-5.0, 40.0], [-5.0, 40.0], [-5.0, 40.0]], kind="DHT11")
    assert values == [None] and "out of range" in last


def test_minimum_interval_between_reads(mpy):
    *_, elapsed_ms = read(mpy, [None, None, [20.0, 40.0]], reads=1)
    assert elapsed_ms >= 2 * 2000 - 50, "DHT22 reads are at least 2 s apart"


def test_adafruit_driver_under_cpython(monkeypatch):
    """The CircuitPython/Blinka path: adafruit_dht's properties raise RuntimeError on a bad frame."""
    device_dir = str(Path(__file__).resolve().parents[3] / "device")
    frames = iter([RuntimeError("Checksum did not validate"), (22.5, 41.0)])

    class FakeDHT22:
        def __init__(self, pin, use_pulseio=True):
            self.pin, self.use_pulseio = pin, use_pulseio
            self.frame = None

        @property
        def temperature(self):
            self.frame = next(frames)
            if isinstance(self.frame, Exception):
                raise self.frame
            return self.frame[0]

        @property
        def humidity(self):
            return self.frame[1]

    class FakeBoard:
        D4 = "GPIO4"

    adafruit = type(sys)("adafruit_dht")
    adafruit.DHT22 = FakeDHT22
    adafruit.DHT11 = FakeDHT22
    monkeypatch.setitem(sys.modules, "adafruit_dht", adafruit)
    monkeypatch.setitem(sys.modules, "board", FakeBoard)
    monkeypatch.setitem(sys.modules, "dht", None)  # not MicroPython: no dht module
    monkeypatch.syspath_prepend(device_dir)
    time_module = type(sys)("time")
    clock = [0]
    time_module.ticks_ms = lambda: clock[0]
    time_module.ticks_add = lambda a, b: a + b
    time_module.ticks_diff = lambda a, b: a - b
    time_module.sleep_ms = lambda ms: clock.__setitem__(0, clock[0] + ms)
    monkeypatch.setitem(sys.modules, "time", time_module)
    monkeypatch.delitem(sys.modules, "sensor", raising=False)
    sensor = importlib.import_module("sensor")
    reader = sensor.Sensor("DHT22", 4)
    assert reader.dev.dev.pin == "GPIO4" and reader.dev.dev.use_pulseio is False
    assert reader.read() == (225, 410)
    assert reader.errors == 1 and "Checksum" in reader.last_error
    assert clock[0] >= 4000, "power-up delay plus the 2 s between the two reads"
    monkeypatch.delitem(sys.modules, "sensor")


@pytest.mark.parametrize("kind", ["DHT22", "DHT11"])
def test_heap_stays_small(mpy, kind):
    values = read(mpy, [[21.0, 40.0]], kind=kind)[0]
    assert values == [[210, 400]]


@pytest.mark.parametrize(
    ("kind", "powered_up_ms", "wait_ms"), [("DHT22", 0, 2000), ("DHT11", 0, 1000), ("DHT22", 10000, 0)]
)
def test_power_up_delay_before_the_first_read(mpy, kind, powered_up_ms, wait_ms):
    # After power-on the sensor needs its settle time; after deep sleep it stayed powered.
    mpy.fake("dht", FAKE_DHT)
    mpy.fake("machine", FAKE_MACHINE)
    (mpy.workdir / "frames.json").write_text("[[20.0, 40.0]]")
    value, elapsed = mpy.json(f"""
        import json, time, sensor
        t0 = time.ticks_ms()
        s = sensor.Sensor({kind!r}, 4, powered_up_ms={powered_up_ms})
        value = s.read()
        print(json.dumps([value, time.ticks_diff(time.ticks_ms(), t0)]))
    """)
    assert value == [200, 400]
    assert wait_ms - 50 <= elapsed <= wait_ms + 500


def test_humidity_over_100_is_rejected(mpy):
    values, errors, last, _ = read(mpy, [[20.0, 100.1], [20.0, 100.1], [20.0, 100.1]])
    assert values == [None] and errors == 3 and "out of range" in last
