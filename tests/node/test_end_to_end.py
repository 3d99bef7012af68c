"""The node against the real local endpoint (`dhtlink serve`'s handlers and SQLite store)
over loopback, through receiver outages, receiver restarts and node restarts: every
reading the node took is stored exactly once."""

import io
import os
import signal
import socket
import subprocess
import sys
import time

import adafruit_dht
import pytest

from cloud import observability
from cloud.local import LocalEndpoint
from host_tools import registry
from host_tools.node.clock import Clock
from host_tools.node.delivery import Sender
from host_tools.node.node import Node, NodeConfig
from host_tools.node.sensor import AdafruitDriver, Sensor
from host_tools.node.simulated import PiNode
from host_tools.node.spool import Spool
from host_tools.sim.verify import readings_in_file
from tests.node.pulses import FakePulseIn, Wire, frame, wire

DEVICE = "pi-e2e"


def stored(data_dir, device_id=DEVICE):
    return [row[0] for row in readings_in_file(data_dir / registry.STORE_FILE, device_id)]


@pytest.fixture
def quiet_endpoint_logs():
    observability.set_output(io.StringIO())
    yield
    observability.set_output(None)


def test_outages_and_restarts_lose_nothing(tmp_path, quiet_endpoint_logs):
    data = tmp_path / "receiver"
    start = time.time() - 9 * 3600  # nine simulated hours that end about now
    secret = registry.add_device(registry.local_store(data), DEVICE)
    pi = PiNode(tmp_path / "node", DEVICE, secret, 120, start, {"seed": 3, "sensor_fail_rate": 0.02})
    clock = lambda _device_id=None: pi.clock.now  # noqa: E731 - the receiver shares the node's simulated time

    def receiver(port=0):
        return LocalEndpoint(data, port=port, clock=clock).start()

    def stop(rx):
        # A stopped receiver process takes its connections with it; the in-thread server
        # would keep serving the node's kept-alive one, so that one is cut here.
        rx.stop()
        pi.node.delivery.sender.session.close()

    rx = receiver()
    port = rx.port
    url = f"{rx.url}/data"
    node = pi.boot(url)
    hour = 3600.0

    def run_for(hours):
        node.run(until=pi.clock.monotonic() + hours * hour)

    run_for(1)
    assert pi.node.spool.depth() < 20  # batches are going out
    stop(rx)  # an outage of three hours, with a node restart (power cut) in it
    run_for(1.5)
    pi.restart(url)
    node = pi.node
    run_for(1.5)
    assert node.spool.depth() >= 85  # three hours of readings, every two minutes
    rx = receiver(port)
    run_for(1)
    for _ in range(5):  # receiver restarts
        stop(rx)
        run_for(0.1)
        rx = receiver(port)
        run_for(0.5)
    run_for(1)
    assert node.spool.depth() < 20  # only the batch being filled
    while node.spool.depth():  # and that one too, now
        assert node.delivery.send_batch(20).retry_in is None
    snap = node.spool.snapshot()
    rx.stop()
    seqs = stored(data)
    assert snap["next_seq"] >= 8 * 30  # one every two minutes, less the failed reads
    assert snap["spool_depth"] == 0 and snap["dropped"] == 0
    assert sorted(seqs) == list(range(snap["next_seq"]))  # 0 lost, 0 stored twice
    assert snap["unverified"] == 0 and snap["rejected"] == 0


@pytest.mark.slow
def test_real_serve_process_killed_and_restarted(tmp_path, monkeypatch):
    """`dhtlink serve` as its own process, SIGKILLed and restarted, while the node reads
    DHT22 frames through adafruit_dht (fake GPIO) in real time."""
    data = tmp_path / "receiver"
    secret = registry.add_device(registry.local_store(data), DEVICE)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, DATA_DIR=str(data), LISTEN_PORT=str(port))
    serve = [sys.executable, "-m", "host_tools.cli", "serve"]

    def start_serve():
        proc = subprocess.Popen(serve, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert "local endpoint" in proc.stdout.readline()
        return proc

    monkeypatch.setattr(adafruit_dht, "PulseIn", FakePulseIn, raising=False)
    traces = []
    for i in range(40):
        traces.append(wire(frame(40 + i / 10, 20 + i / 10, checksum_delta=1 if i % 7 == 3 else 0), seed=i))
    FakePulseIn.wire = Wire(*traces)
    clock = Clock()
    config = NodeConfig(
        DEVICE, f"http://127.0.0.1:{port}/data", secret, interval_s=2, batch_size=3, max_batch_delay_s=4
    )
    sensor = Sensor("DHT22", AdafruitDriver("DHT22", object(), use_pulseio=True), clock)
    sender = Sender(config.endpoint, DEVICE, secret, timeout=(1, 2))
    node = Node(config, sensor, Spool(tmp_path / "node"), sender, clock)
    node.delivery.backoff.base_s = 1  # seconds, not minutes, between retries in a test
    proc = start_serve()
    try:
        node.run(until=clock.monotonic() + 8)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        node.run(until=clock.monotonic() + 8)
        assert node.spool.depth() >= 3
        proc = start_serve()
        node.run(until=clock.monotonic() + 8)
        deadline = clock.monotonic() + 30
        while node.spool.depth() and clock.monotonic() < deadline:
            node.run(until=clock.monotonic() + 2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    snap = node.spool.snapshot()
    node.close()
    assert snap["spool_depth"] == 0 and snap["dropped"] == 0
    assert sorted(stored(data)) == list(range(snap["next_seq"]))
    assert snap["sensor_errors"] == 0  # each checksum error was retried within its read
