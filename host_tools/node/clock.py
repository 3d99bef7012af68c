"""Time for the node: wall clock for timestamps, monotonic clock for schedules, and a
sleep that a stop request ends early. A bench swaps in a simulated one to run days fast."""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Clock:
    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    stop: threading.Event = field(default_factory=threading.Event)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.stop.wait(seconds)


class SimulatedClock(Clock):
    """Time that moves only when the node sleeps: a simulated day takes no real day."""

    def __init__(self, start: float) -> None:
        self.now = start
        super().__init__(wall=lambda: self.now, monotonic=lambda: self.now)

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
