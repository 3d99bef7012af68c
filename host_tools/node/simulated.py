"""Pi nodes for the fleet bench: the real node (spool, delivery, reaction table) on a
simulated clock with a simulated sensor, so a day runs in seconds beside virtual ESP32s."""

import logging
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from host_tools.node.clock import SimulatedClock
from host_tools.node.delivery import Sender
from host_tools.node.node import Node, NodeConfig
from host_tools.node.sensor import Sensor, open_driver
from host_tools.node.spool import Spool
from host_tools.sim.run import Summary


class PiNode:
    """One simulated Pi: `restart()` is a power cut (the process dies without closing)."""

    def __init__(self, directory: Path, device_id: str, secret: str, interval: int, start: float, scenario: dict):
        self.dir = directory
        self.scenario = scenario
        self.clock = SimulatedClock(start)
        self.config = NodeConfig(
            device_id=device_id, endpoint="", secret=secret, interval_s=interval, state_dir=directory
        )
        # The driver `dhtlink node --simulate` reads, with the scenario's climate and faults.
        self.driver = open_driver(
            "DHT22",
            "D4",
            simulate=True,
            seed=scenario.get("seed", 1),
            t_mean=scenario.get("t_mean", 21.0),
            fail_rate=scenario.get("sensor_fail_rate", 0),
        )
        self.senders: list[Sender] = []
        self.power_cuts = 0

    def boot(self, endpoint: str) -> Node:
        self.config.endpoint = endpoint
        sender = Sender(endpoint, self.config.device_id, self.config.secret)
        self.senders.append(sender)
        sensor = Sensor("DHT22", self.driver, self.clock)
        self.node = Node(self.config, sensor, Spool(self.dir), sender, self.clock)
        return self.node

    def restart(self, endpoint: str) -> None:
        self.power_cuts += 1
        self.node.spool.close()  # the file handle only: nothing is flushed that SQLite has not committed
        self.boot(endpoint)

    def run(self, endpoint: str, cycles: int, drain_to: str | None = None) -> Summary:
        rng = random.Random(self.scenario.get("seed", 1) + 7)
        node = self.boot(endpoint)
        cut_rate = self.scenario.get("power_cut_rate", 0)
        for _ in range(cycles):
            node.run(until=self.clock.monotonic() + node.config.interval_s)
            if cut_rate and rng.random() < cut_rate:
                self.restart(endpoint)
                node = self.node
        if drain_to:
            self.restart(drain_to)  # the network is back: a restart sends at once
            self.power_cuts -= 1
            node = self.node
            for _ in range(20):
                if not node.spool.depth():
                    break
                node.run(until=self.clock.monotonic() + 60)
        return self.summary(cycles)

    def summary(self, cycles: int) -> Summary:
        snap = self.node.spool.snapshot()
        self.node.spool.close()
        for sender in self.senders:
            sender.close()
        return Summary(
            device_id=self.config.device_id,
            cycles=cycles,
            readings_taken=snap["next_seq"],
            next_seq=snap["next_seq"],
            acknowledged=snap["next_seq"] - snap["spool_depth"] - snap["dropped"],
            still_spooled=snap["spool_depth"],
            dropped=snap["dropped"],
            sensor_errors=snap["sensor_errors"],
            heap_high_water=0,
            requests=snap["requests"],
            bytes_sent=sum(s.bytes_sent for s in self.senders),
            bytes_received=sum(s.bytes_received for s in self.senders),
            power_cuts=self.power_cuts,
            # The bench counts power cuts from how each start ended, as for the boards.
            boots={"power_cut": self.power_cuts, "stopped": 1},
            drops={"drop_full": snap["drop_full"], "drop_poison": snap["drop_poison"]},
            unverified=snap["unverified"],
            last_error=snap.get("last_error"),
        )


def make_nodes(
    root: Path, secrets: dict[str, str], scenarios: dict[str, dict[str, Any]], interval: int, start: float
) -> dict[str, PiNode]:
    return {
        device_id: PiNode(root / device_id, device_id, secret, interval, start, scenarios[device_id])
        for device_id, secret in secrets.items()
    }


def fly(nodes: dict[str, PiNode], target: str, drain_to: str | None, cycles: int) -> dict[str, Summary]:
    """Run every Pi node for `cycles` readings, side by side; with drain_to, empty each
    spool straight into the receiver afterwards (the bench's chaos is over). The nodes'
    log goes to node.log beside their spools, not into the bench's report."""
    if not nodes:
        return {}
    logger = logging.getLogger("dhtlink.node")
    root = next(iter(nodes.values())).dir.parent
    root.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(root / "node.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with ThreadPoolExecutor(min(len(nodes), 16)) as pool:
            drain = drain_to and drain_to + "/data"
            futures = {d: pool.submit(n.run, target + "/data", cycles, drain) for d, n in nodes.items()}
            return {d: f.result() for d, f in futures.items()}
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        handler.close()
