"""The node's cycle: read on schedule, spool, send when a batch is due, back off on trouble."""

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from host_tools.node.clock import Clock
from host_tools.node.delivery import Delivery, Sender
from host_tools.node.sensor import Sensor, SensorUnavailable
from host_tools.node.spool import DEFAULT_MAX_ITEMS, Spool

log = logging.getLogger("dhtlink.node")

DEFAULT_STATE_DIR = Path("/var/lib/dhtlink-node")
# A sensor that cannot be opened (GPIO backend missing, no access, no controller) is tried
# again at a reading time at least this long after the last try, doubling up to the cap.
SENSOR_RETRY_S = 10
SENSOR_RETRY_MAX_S = 600


@dataclass
class NodeConfig:
    device_id: str
    endpoint: str  # the full POST URL, ending in /data
    secret: str = field(repr=False)
    sensor: str = "DHT22"
    pin: str = "D4"
    interval_s: int = 60
    batch_size: int = 20
    max_batch_delay_s: int = 300
    spool_max: int = DEFAULT_MAX_ITEMS
    state_dir: Path = DEFAULT_STATE_DIR
    simulate: bool = False  # a simulated DHT22 instead of Blinka's GPIO


class Node:
    """`sensor` is an open Sensor, or a function that opens one: then the node starts without
    it, keeps delivering its spool, and retries the opening with backoff while it raises
    SensorUnavailable (a SensorSetupError ends the run: no retry can fix it)."""

    def __init__(
        self,
        config: NodeConfig,
        sensor: Sensor | Callable[[], Sensor],
        spool: Spool,
        sender: Sender,
        clock: Clock,
    ) -> None:
        self.config = config
        self.sensor = sensor if isinstance(sensor, Sensor) else None
        self.open_sensor = None if isinstance(sensor, Sensor) else sensor
        self.sensor_retry_s = float(SENSOR_RETRY_S)
        self.sensor_next_try = clock.monotonic()
        self.spool = spool
        self.clock = clock
        self.delivery = Delivery(spool, sender, clock)
        self.next_read = clock.monotonic()
        self.send_after = clock.monotonic()
        # A fresh start reports at once (so a new or restarted node shows up), and a failed
        # send is retried when its backoff ends even if no batch is due yet.
        self.retrying = True
        spool.note(device_id=config.device_id)
        spool.count("boot")

    def _sensor(self) -> Sensor | None:
        """The open sensor, opening it if it is due; None while it cannot be opened."""
        if self.sensor is not None or self.open_sensor is None:
            return self.sensor
        now = self.clock.monotonic()
        if now < self.sensor_next_try:
            return None
        try:
            self.sensor = self.open_sensor()
        except SensorUnavailable as error:
            self.spool.count("sensor_errors")
            why = f"sensor unavailable: {error}"
            self.spool.note(last_error=why, last_error_at=int(self.clock.wall()))
            log.error("%s; retrying in %d s", why, self.sensor_retry_s)
            self.sensor_next_try = now + self.sensor_retry_s
            self.sensor_retry_s = min(self.sensor_retry_s * 2, SENSOR_RETRY_MAX_S)
            return None
        where = "a simulation" if self.config.simulate else f"pin {self.config.pin}"
        log.info("sensor open: %s on %s", self.config.sensor, where)
        return self.sensor

    def read_once(self) -> None:
        sensor = self._sensor()
        if sensor is None:
            return
        reading = sensor.read()
        if reading is None:
            self.spool.count("sensor_errors")
            why = f"sensor: {sensor.last_error}"
            self.spool.note(last_error=why, last_error_at=int(self.clock.wall()))
            log.warning(why)
            return
        seq = self.spool.append(self.delivery.now(), reading.t10, reading.h10)
        log.debug("reading seq %d: t=%s h=%s", seq, reading.t10 / 10, reading.h10 / 10)

    def batch_due(self) -> bool:
        depth = self.spool.depth()
        if not depth:
            return False
        if self.retrying or depth >= self.config.batch_size:
            return True
        oldest = self.spool.oldest_ts()
        return oldest is not None and self.delivery.now() - oldest >= self.config.max_batch_delay_s

    def send_due(self) -> None:
        """Send oldest first until the spool is empty, a send fails, or a reading is due."""
        while self.spool.depth():
            result = self.delivery.send_batch(self.config.batch_size)
            if result.retry_in is not None:
                self.retrying = True
                self.send_after = self.clock.monotonic() + result.retry_in
                return
            self.retrying = False
            if self.clock.monotonic() >= self.next_read:
                self.retrying = bool(self.spool.depth())  # carry on after the reading
                return

    def step(self) -> float:
        """Do what is due now; returns the seconds until something else is."""
        now = self.clock.monotonic()
        if now >= self.next_read:
            self.read_once()
            self.next_read += self.config.interval_s
            if self.next_read <= self.clock.monotonic():  # fell behind (suspend, slow disk): no burst
                self.next_read = self.clock.monotonic() + self.config.interval_s
        if self.clock.monotonic() >= self.send_after and self.batch_due():
            self.send_due()
        wake = self.next_read
        if self.spool.depth():
            wake = min(wake, max(self.send_after, self._delay_due()))
        return max(0.0, wake - self.clock.monotonic())

    def _delay_due(self) -> float:
        # When the oldest spooled reading reaches max_batch_delay_s.
        if self.retrying:
            return self.send_after
        oldest = self.spool.oldest_ts()
        if oldest is None:
            return math.inf
        return self.clock.monotonic() + oldest + self.config.max_batch_delay_s - self.delivery.now()

    def run(self, until: float | None = None) -> None:
        """Until the clock's stop event is set (SIGTERM), or its monotonic time reaches `until`."""
        while not self.clock.stop.is_set() and (until is None or self.clock.monotonic() < until):
            delay = self.step()
            if until is not None:
                delay = min(delay, max(0.0, until - self.clock.monotonic()))
            self.clock.sleep(delay)

    def close(self) -> None:
        if self.sensor is not None:
            self.sensor.close()
        self.delivery.sender.close()
        self.spool.close()
