"""The node's sensor rules on top of the real adafruit_dht decoding; only the GPIO
(Blinka's PulseIn) is fake, fed with DHT22/DHT11 pulse trains."""

import types

import adafruit_dht
import pytest

from host_tools.node.clock import SimulatedClock
from host_tools.node.sensor import AdafruitDriver, Reading, Sensor, SensorSetupError, resolve_pin
from tests.node.pulses import FakePulseIn, Wire, dht11_frame, frame, wire

PIN = object()  # what board.D4 is to the library: an opaque pin handle


@pytest.fixture
def gpio(monkeypatch):
    """Returns a function that puts pulse trains on the wire of a new sensor."""

    def attach(*traces, kind="DHT22"):
        # On a host without pulseio the library never imported PulseIn: give it the fake.
        monkeypatch.setattr(adafruit_dht, "PulseIn", FakePulseIn, raising=False)
        FakePulseIn.wire = Wire(*traces)
        clock = SimulatedClock(1_000_000.0)
        sensor = Sensor(kind, AdafruitDriver(kind, PIN, use_pulseio=True), clock)
        return sensor, FakePulseIn.wire, clock

    return attach


def test_a_frame_is_decoded_by_the_library(gpio):
    sensor, line, _ = gpio(wire(frame(65.2, 35.1), seed=1))
    assert sensor.read() == Reading(t10=351, h10=652)
    assert sensor.errors == 0
    assert line.triggers == [1000]  # the DHT22's 1 ms start signal


def test_below_zero(gpio):
    sensor, _, _ = gpio(wire(frame(80.3, -10.1), seed=2))
    assert sensor.read() == Reading(t10=-101, h10=803)


def test_dht11_frame(gpio):
    sensor, line, _ = gpio(wire(dht11_frame(45, 21.3), seed=3), kind="DHT11")
    assert sensor.read() == Reading(t10=213, h10=450)
    assert line.triggers == [18000]


def test_checksum_error_is_counted_and_retried(gpio):
    sensor, _, _ = gpio(wire(frame(45.2, 21.4, checksum_delta=1), seed=4), wire(frame(45.2, 21.4), seed=5))
    assert sensor.read() == Reading(214, 452)
    assert sensor.errors == 1


def test_a_flipped_bit_fails_the_checksum(gpio):
    bad = wire(frame(45.2, 21.4), seed=6)
    bad[2 + 2 * 20 + 1] = 70 if bad[2 + 2 * 20 + 1] < 50 else 27  # bit 20 of the frame flipped on the wire
    sensor, _, _ = gpio(bad)
    assert sensor.read(tries=1) is None
    assert "Checksum" in sensor.last_error
    assert sensor.errors == 1


def test_timeouts_and_short_frames_give_none_never_the_last_value(gpio):
    good = wire(frame(45.2, 21.4), seed=7)
    sensor, _, _ = gpio(good, [], good[:40], [])
    assert sensor.read() == Reading(214, 452)
    # The library would hand back its cached 21.4 within 2 s and after a failed frame:
    # the node must count the failures and give nothing.
    assert sensor.read() is None
    assert sensor.errors == 3
    assert "check wiring" in sensor.last_error  # the last try: no answer at all


def test_short_frame_message(gpio):
    sensor, _, _ = gpio(wire(frame(45.2, 21.4))[:60], [], [])
    sensor.read(tries=1)
    assert "full buffer" in sensor.last_error


def test_implausible_values_are_refused(gpio):
    hot = wire(frame(45.2, 90.0), seed=8)  # above the DHT22's 80 C
    zeros = wire(bytes(5), seed=9)  # a sensor losing power answers all-zero frames
    wet = wire(frame(100.1, 21.0), seed=10)  # the library refuses humidity over 100
    sensor, _, _ = gpio(hot, zeros, wet)
    assert sensor.read() is None
    assert sensor.errors == 3
    assert "unplausible" in sensor.last_error


def test_each_refusal_reason(gpio):
    sensor, _, _ = gpio(wire(frame(45.2, 90.0)), wire(bytes(5)))
    assert sensor.read(tries=1) is None
    assert sensor.last_error.startswith("out of range")
    assert sensor.read(tries=1) is None
    assert sensor.last_error == "all-zero frame"


def test_reads_keep_the_minimum_interval_and_power_up_time(gpio):
    good = [wire(frame(45.2, 21.4 + i / 10), seed=i) for i in range(3)]
    sensor, _, clock = gpio(*good)
    start = clock.now
    first = sensor.read()
    assert clock.now - start >= 2.0  # the DHT22 settles 2 s after power-up
    before = clock.now
    second = sensor.read()
    assert clock.now - before >= 2.0
    assert (first.t10, second.t10) == (214, 215)


def test_pin_by_board_name():
    board = types.SimpleNamespace(D4=PIN, D17=object(), SDA=object())
    assert resolve_pin("D4", board) is PIN
    with pytest.raises(SensorSetupError, match=r"no such pin \(pins: D17, D4\)"):
        resolve_pin("D5", board)
    with pytest.raises(SensorSetupError, match="board pin name such as D4"):
        resolve_pin("4", board)


def test_pin_on_a_board_blinka_has_no_gpio_for():
    # This x86 host: Blinka's board module loads but has no D pins.
    with pytest.raises(SensorSetupError, match="--pin D4: this board has no such pin"):
        resolve_pin("D4")


def test_a_gpio_the_user_may_not_open_is_named_with_the_fix(tmp_path, monkeypatch):
    from host_tools.node import sensor

    assert sensor.gpio_access_problem(tmp_path) is None  # no GPIO chips: nothing to say
    for n in (0, 4):
        (tmp_path / f"gpiochip{n}").write_text("")
    assert sensor.gpio_access_problem(tmp_path) is None  # root here: may open them
    monkeypatch.setattr(sensor.os, "access", lambda path, mode: False)
    problem = sensor.gpio_access_problem(tmp_path)
    assert problem.startswith(f"no access to {tmp_path / 'gpiochip0'} (group ")
    assert "sudo usermod -aG" in problem and "SupplementaryGroups=gpio" in problem
