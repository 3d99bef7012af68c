"""DHT22/DHT11 frames as the pulse trains a sensor puts on the wire, and a fake of Blinka's
pulseio.PulseIn that plays them back: the GPIO is the only thing faked, adafruit_dht's own
decoding runs on the durations.

Timings are the AM2302 (DHT22) datasheet's: the sensor answers the host's start signal with
80 us low, 80 us high, then per bit 50 us low and 26-28 us high for a 0 or 70 us high for a
1, then a final 50 us low. A seeded jitter of a few microseconds stands in for a real
capture's spread (Blinka's PulseIn on a Raspberry Pi reports whole microseconds).
"""

import random
from collections import deque


def frame(humidity: float, temperature: float, checksum_delta: int = 0) -> bytes:
    """The DHT22's 5-byte frame: humidity x10, sign-magnitude temperature x10, checksum."""
    h = round(humidity * 10)
    t = round(abs(temperature) * 10) | (0x8000 if temperature < 0 else 0)
    data = bytes([h >> 8, h & 0xFF, t >> 8, t & 0xFF])
    return data + bytes([(sum(data) + checksum_delta) & 0xFF])


def dht11_frame(humidity: int, temperature: float) -> bytes:
    data = bytes([humidity, 0, int(temperature), round(temperature % 1 * 10)])
    return data + bytes([sum(data) & 0xFF])


def wire(data: bytes, seed: int = 0) -> list[int]:
    """The durations (us) of every level the sensor drives, low first."""
    rng = random.Random(seed)

    def jitter(us: int) -> int:
        return us + rng.randint(-4, 4)

    pulses = [jitter(80), jitter(80)]
    for byte in data:
        for bit in range(7, -1, -1):
            pulses += [jitter(50), jitter(70) if byte >> bit & 1 else jitter(27)]
    return pulses + [jitter(50)]


class Wire:
    """What the sensor will answer to each start signal, in order; an empty trace is a
    sensor that does not answer (timeout)."""

    def __init__(self, *traces: list[int]) -> None:
        self.traces = deque(traces)
        self.triggers: list[int] = []


class FakePulseIn:
    """pulseio.PulseIn as Blinka has it: a bounded buffer of pulse durations that keeps the
    newest `maxlen`, filled after resume(trigger_us) sends the start signal."""

    wire: Wire  # set by the test before the driver opens the pin

    def __init__(self, pin, maxlen: int = 2, idle_state: bool = False) -> None:
        self.pin = pin
        self.buffer: deque[int] = deque(maxlen=maxlen)
        self.paused = False

    def pause(self) -> None:
        self.paused = True

    def resume(self, trigger_duration: int = 0) -> None:
        self.paused = False
        self.wire.triggers.append(trigger_duration)
        trace = self.wire.traces.popleft() if self.wire.traces else []
        self.buffer.extend(trace)

    def clear(self) -> None:
        self.buffer.clear()

    def popleft(self) -> int:
        return self.buffer.popleft()

    def __len__(self) -> int:
        return len(self.buffer)

    def deinit(self) -> None:
        self.buffer.clear()
