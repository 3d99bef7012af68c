"""`dhtlink serve --mqtt` as a user runs it, against a real mosquitto on loopback: the options,
a kill -9 of the bridge's process, and one virtual board running the real firmware."""

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from cloud import homeassistant as ha
from cloud import signing
from host_tools import registry
from tests.cloud.test_serve_cli import DHTLINK
from tests.homeassistant.broker import Mosquitto, Subscriber, free_port, retained

TOPICS = ("homeassistant/#", "dhtlink/#")


class Serve:
    """`dhtlink serve` in a subprocess; its console lines collected as they come."""

    def __init__(self, data: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(data), "LISTEN_PORT": str(self.port), **(env or {})}
        self.process = subprocess.Popen(
            [DHTLINK, "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def logs(self, message: str) -> list[dict[str, Any]]:
        records = [json.loads(line) for line in list(self.lines) if line.startswith("{")]
        return [record for record in records if record.get("message") == message]

    def wait_listening(self) -> None:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(self.url, timeout=1)
                return
            except requests.ConnectionError:
                assert self.process.poll() is None, "\n".join(self.lines)
                assert time.monotonic() < deadline, "serve did not start listening"
                time.sleep(0.1)

    def post(self, device_id: str, secret: str, readings: list[dict[str, Any]]) -> None:
        body = json.dumps({"device_id": device_id, "readings": readings}).encode()
        headers = signing.signed_headers(secret, device_id, int(time.time()), "/data", body)
        answer = requests.post(f"{self.url}/data", data=body, headers=headers, timeout=5)
        assert answer.status_code == 200, answer.text

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no goodbye, only the broker's last will
        self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=20)
        self._reader.join(timeout=5)
        return code


@pytest.fixture
def serve(tmp_path):
    started: list[Serve] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Serve:
        process = Serve(tmp_path / "data", *args, env=env)
        started.append(process)
        process.wait_listening()
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.stop()


def test_a_killed_bridge_goes_offline_by_its_will_and_a_restart_publishes_everything_again(tmp_path, broker, serve):
    store = registry.local_store(tmp_path / "data")
    secret = registry.add_device(store, "porch")
    now = int(time.time())
    first = serve("--mqtt", broker.url)
    with Subscriber(broker, *TOPICS) as watch:
        first.post("porch", secret, [{"seq": 0, "ts": now - 1, "t": 12.5, "h": 70.0}])
        watch.wait_for(lambda m: m.topic == ha.state_topic("porch") and json.loads(m.payload)["t"] == 12.5)
        first.kill()
        will = watch.wait_for(lambda m: m.topic == ha.BRIDGE_STATUS_TOPIC and m.payload == b"offline", timeout=10)
        second = serve("--mqtt", broker.url)
        config = watch.wait_for(lambda m: m.topic == ha.config_topic("porch"), after=will.at, timeout=10)
        state = watch.wait_for(lambda m: m.topic == ha.state_topic("porch"), after=will.at, timeout=10)
        online = watch.wait_for(lambda m: m.topic == ha.BRIDGE_STATUS_TOPIC and m.payload == b"online", after=will.at)
    assert json.loads(config.payload)["cmps"].keys() == {"temperature", "humidity"}
    assert json.loads(state.payload)["t"] == 12.5, "the state comes back from the store"
    assert online.at >= will.at
    held = retained(broker, *TOPICS)
    assert held[ha.BRIDGE_STATUS_TOPIC] == b"online" and held[ha.availability_topic("porch")] == b"online"
    assert second.stop() == 0
    assert retained(broker, ha.BRIDGE_STATUS_TOPIC)[ha.BRIDGE_STATUS_TOPIC] == b"offline", "a clean stop says so"


def test_the_password_comes_from_the_environment_or_a_file_never_the_url(tmp_path, serve):
    password = "correct-horse-battery"
    with Mosquitto(tmp_path, users={"dhtlink": password}) as broker:
        url = f"mqtt://dhtlink@127.0.0.1:{broker.port}"
        with Subscriber(broker, ha.BRIDGE_STATUS_TOPIC, username="dhtlink", password=password) as watch:
            by_env = serve("--mqtt", url, env={"DHTLINK_MQTT_PASSWORD": password})
            watch.wait_for(lambda m: m.payload == b"online")
            assert by_env.stop() == 0
            secret_file = tmp_path / "mqtt-password"
            secret_file.write_text(password + "\n")
            later = time.monotonic()
            by_file = serve("--mqtt", url, "--mqtt-password-file", str(secret_file))
            watch.wait_for(lambda m: m.payload == b"online", after=later)
            assert by_file.stop() == 0
    assert password not in "\n".join(by_env.lines + by_file.lines)
    assert f"mqtt://dhtlink@127.0.0.1:{broker.port}" in "\n".join(by_env.lines), "serve names the broker it uses"


def test_mqtts_verifies_the_broker_against_the_named_ca(tmp_path, serve):
    with Mosquitto(tmp_path, tls=True) as broker, Subscriber(broker, ha.BRIDGE_STATUS_TOPIC) as watch:
        unverified = serve("--mqtt", broker.url)  # the system's CAs do not know a self-signed broker
        deadline = time.monotonic() + 10
        while not unverified.logs("MQTT broker unreachable; retrying"):
            assert time.monotonic() < deadline, "\n".join(unverified.lines)
            time.sleep(0.1)
        assert not watch.messages, "no connection without a verified broker"
        assert unverified.stop() == 0
        verified = serve("--mqtt", broker.url, "--mqtt-ca", str(broker.ca_file))
        watch.wait_for(lambda m: m.payload == b"online")
        assert verified.stop() == 0


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://dhtlink:hunter2-secret@127.0.0.1", "holds a password"),
        ("http://127.0.0.1:1883", "must start with mqtt:// or mqtts://"),
        ("mqtt://127.0.0.1:99999", "port must be a number"),
        ("mqtt://127.0.0.1/topic", "takes no path"),
    ],
)
def test_a_bad_broker_url_is_refused_before_anything_starts(tmp_path, url, expected):
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "data"), "LISTEN_PORT": str(free_port())}
    done = subprocess.run([DHTLINK, "serve", "--mqtt", url], capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 2
    assert expected in done.stderr
    assert "hunter2-secret" not in done.stdout + done.stderr


@pytest.mark.slow
def test_one_virtual_board_appears_in_home_assistant_within_five_seconds_of_its_first_batch(tmp_path, broker, serve):
    """The issue's check: serve --mqtt on a loopback broker, one virtual board running the real
    firmware; a subscriber to homeassistant/# sees the retained discovery with both sensors
    within 5 s of the first stored batch, and the state carries that batch's newest reading."""
    store = registry.local_store(tmp_path / "data")
    secret = registry.add_device(store, "sim-01")
    endpoint = serve("--mqtt", broker.url)
    with Subscriber(broker, *TOPICS) as watch:
        sim = subprocess.run(
            [DHTLINK, "sim", "--endpoint", endpoint.url, "--device", "sim-01", "--cycles", "1", "--json"],
            capture_output=True,
            text=True,
            env={**os.environ, "DHTLINK_SECRET": secret},
            timeout=300,
        )
        assert sim.returncode == 0, sim.stderr
        state = watch.wait_for(lambda m: m.topic == ha.state_topic("sim-01"), timeout=5)
        (stored,) = endpoint.logs("batch stored")
    assert state.wall - stored["timestamp"] < 5
    held = retained(broker, "homeassistant/#")
    config = json.loads(held[ha.config_topic("sim-01")])
    assert {key: (c["device_class"], c["unit_of_measurement"]) for key, c in config["cmps"].items()} == {
        "temperature": ("temperature", "°C"),
        "humidity": ("humidity", "%"),
    }
    discovered = [m for m in watch.messages if m.topic == ha.config_topic("sim-01")]
    assert discovered and discovered[0].wall - stored["timestamp"] < 5
    (newest,) = store.query_readings("sim-01", limit=1)[0]
    assert stored["accepted"] == 1 and json.loads(state.payload) == ha.state(newest)
