"""The node's cycle on a simulated clock: when it reads, when it sends, how it waits."""

import time

import pytest

from host_tools.node.clock import SimulatedClock
from host_tools.node.delivery import Sender
from host_tools.node.node import Node, NodeConfig
from host_tools.node.sensor import FrameError, Sensor
from host_tools.node.spool import Spool
from tests.node.scripted import ScriptedReceiver

SECRET = "cd" * 32
START = 1_800_000_000.0


class Frames:
    """A driver that answers from a list: a tuple is a frame, an exception a failed one."""

    def __init__(self, *frames):
        self.frames = list(frames)

    def read_frame(self):
        item = self.frames.pop(0) if self.frames else (21.0, 50.0)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self):
        pass


@pytest.fixture
def make_node(tmp_path):
    nodes = []

    def make(url, driver=None, **config):
        clock = SimulatedClock(START)
        cfg = NodeConfig("pi-node", url, SECRET, state_dir=tmp_path, **config)
        sensor = Sensor("DHT22", driver or Frames(), clock)
        node = Node(cfg, sensor, Spool(tmp_path), Sender(url, "pi-node", SECRET, (1, 1)), clock)
        nodes.append(node)
        return node, clock

    yield make
    for node in nodes:
        node.close()


def test_first_reading_goes_out_at_once_then_batches_by_age(make_node):
    with ScriptedReceiver(SECRET, clock_offset=int(START - time.time())) as rx:
        node, clock = make_node(rx.url, interval_s=60, batch_size=20, max_batch_delay_s=300)
        node.run(until=clock.monotonic() + 3600)
    sizes = [len(r["readings"]) for r in rx.requests]
    assert sizes[0] == 1  # a fresh start reports at once
    # Then whenever the oldest has waited 300 s: at 60 s a reading, the sixth is read first.
    assert set(sizes[1:]) == {6}
    assert node.spool.depth() < 6
    assert [r["ts"] for r in rx.requests[1]["readings"]] == [int(START) + 60 * i for i in range(1, 7)]


def test_full_batch_goes_out_before_its_delay(make_node):
    with ScriptedReceiver(SECRET, clock_offset=int(START - time.time())) as rx:
        node, clock = make_node(rx.url, interval_s=10, batch_size=5, max_batch_delay_s=3600)
        node.run(until=clock.monotonic() + 200)
    assert [len(r["readings"]) for r in rx.requests][:4] == [1, 5, 5, 5]


def test_failed_reads_are_counted_not_stored(make_node):
    bad = [FrameError("Checksum did not validate. Try again.")] * 3
    with ScriptedReceiver(SECRET) as rx:
        node, clock = make_node(rx.url, Frames(*bad, (22.5, 40.0)), interval_s=60)
        node.run(until=clock.monotonic() + 61)
    snap = node.spool.snapshot()
    assert snap["sensor_errors"] == 1  # one failed read (three failed tries)
    assert node.sensor.errors == 3
    assert "Checksum" in snap["last_error"]
    assert [(r["t"], r["h"]) for q in rx.requests for r in q["readings"]] == [(22.5, 40.0)]
    assert snap["next_seq"] == 1


def test_outage_waits_for_the_backoff_and_keeps_reading(make_node):
    with ScriptedReceiver(SECRET) as rx:
        url = rx.url  # closed: connection refused
    node, clock = make_node(url, interval_s=60, batch_size=20, max_batch_delay_s=300)
    node.run(until=clock.monotonic() + 3 * 3600)
    snap = node.spool.snapshot()
    assert snap["spool_depth"] == snap["next_seq"] >= 178
    # Exponential backoff capped at 15 minutes: tens of tries in three hours, not thousands.
    assert 10 <= snap["requests"] <= 30
    assert "ConnectionError" in snap["last_error"]


def test_a_restarted_node_continues_its_seqs(make_node, tmp_path):
    with ScriptedReceiver(SECRET) as rx:
        down = rx.url
    node, clock = make_node(down, interval_s=60)
    node.run(until=clock.monotonic() + 200)
    node.close()
    with ScriptedReceiver(SECRET) as rx:
        node, clock = make_node(rx.url, interval_s=60)
        node.run(until=clock.monotonic() + 10)
    seqs = [r["seq"] for q in rx.requests for r in q["readings"]]
    assert seqs == [0, 1, 2, 3, 4]  # the four kept through the outage, then the restart's first reading
    assert node.spool.get("next_seq") == 5 and node.spool.depth() == 0


def test_a_sensor_that_cannot_be_opened_is_retried_with_backoff_while_the_spool_goes_out(tmp_path):
    from host_tools.node.sensor import SensorUnavailable

    clock = SimulatedClock(START)
    tries = []

    def open_sensor():
        tries.append(clock.now - START)
        if len(tries) <= 4:
            raise SensorUnavailable("the GPIO backend is not installed (no module 'gpiod')")
        return Sensor("DHT22", Frames(), clock)

    spool = Spool(tmp_path)
    for i in range(3):  # readings of an earlier run, still to send
        spool.append(int(START) - 600 + i, 214, 452)
    with ScriptedReceiver(SECRET, clock_offset=int(START - time.time())) as rx:
        cfg = NodeConfig("pi-node", rx.url, SECRET, interval_s=5, state_dir=tmp_path)
        node = Node(cfg, open_sensor, spool, Sender(rx.url, "pi-node", SECRET, (1, 1)), clock)
        node.run(until=clock.monotonic() + 200)
        snap = spool.snapshot()
        node.close()
    # At reading times (every 5 s) no sooner than 10, 20, 40, 80 s after each failed try.
    assert tries == [0, 10, 30, 70, 150]
    assert rx.requests[0]["readings"][0]["seq"] == 0  # the spool went out before any reading
    assert snap["sensor_errors"] == 4
    assert snap["next_seq"] > 3  # readings again once the sensor opened


def test_a_sensor_configuration_no_retry_can_fix_ends_the_run(tmp_path):
    from host_tools.node.sensor import SensorSetupError

    clock = SimulatedClock(START)

    def open_sensor():
        raise SensorSetupError("--pin D5: this board has no such pin")

    node = Node(NodeConfig("pi-node", "http://127.0.0.1:9/data", SECRET), open_sensor, Spool(tmp_path),
                Sender("http://127.0.0.1:9/data", "pi-node", SECRET, (1, 1)), clock)  # fmt: skip
    with pytest.raises(SensorSetupError):
        node.run(until=clock.monotonic() + 60)
    node.close()
