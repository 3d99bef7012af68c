"""A real MQTT broker on loopback for the bridge's tests, and a subscriber that records what
it delivers: Debian's mosquitto (`make mosquitto`), its own config in a temporary
directory, never the system service.

    with Mosquitto(tmp_path) as broker:
        with Subscriber(broker, "homeassistant/#") as watch:
            message = watch.wait_for(lambda m: m.topic.endswith("/config"))
"""

import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_mosquitto() -> None:
    if shutil.which(MOSQUITTO) is None:
        pytest.fail(f"{MOSQUITTO} is missing: `make mosquitto` (or `make test`) installs Debian's mosquitto")


def self_signed(cert: Path, key: Path) -> None:
    """A certificate for 127.0.0.1 that is its own CA (a broker's self-signed TLS, as users run it)."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )


class Mosquitto:
    """mosquitto on 127.0.0.1:port with no persistence: a restart forgets every retained message,
    as a broker that lost its store would. `users` {name: password} turns anonymous access off."""

    def __init__(self, directory: Path, users: dict[str, str] | None = None, tls: bool = False) -> None:
        require_mosquitto()
        self.directory = directory / f"mosquitto-{uuid.uuid4().hex[:6]}"
        self.directory.mkdir(parents=True)
        self.port = free_port()
        self.log = self.directory / "mosquitto.log"
        lines = [
            # Started as root, mosquitto would switch to its own user, who cannot read this directory.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            f"log_dest file {self.log}",
            "log_type all",
        ]
        if users:
            passwords = self.directory / "passwords"
            passwords.write_text("")
            for user, password in users.items():
                subprocess.run(["/usr/bin/mosquitto_passwd", "-b", str(passwords), user, password], check=True)
            passwords.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        self.ca_file: Path | None = None
        if tls:
            self.ca_file = self.directory / "broker.crt"
            key = self.directory / "broker.key"
            self_signed(self.ca_file, key)
            lines += [f"certfile {self.ca_file}", f"keyfile {key}"]
        self.config = self.directory / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.ca_file else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self) -> "Mosquitto":
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    _, err = self.process.communicate()
                    raise RuntimeError(f"mosquitto did not start: {err.decode()[-500:]}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self, down_s: float = 0.5) -> None:
        """Stop, stay down `down_s`, start again on the same port with nothing retained."""
        self.stop()
        time.sleep(down_s)
        self.start()

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    at: float  # time.monotonic() when it arrived
    wall: float  # time.time() when it arrived, to compare with a log line's timestamp

    @property
    def text(self) -> str:
        return self.payload.decode()


class Subscriber:
    """A plain MQTT client subscribed to `topics` from the moment it is entered; `messages`
    holds everything delivered, in order. Also publishes (as Home Assistant would)."""

    def __init__(
        self, broker: Mosquitto, *topics: str, username: str | None = None, password: str | None = None
    ) -> None:
        self.broker = broker
        self.topics = topics or ("#",)
        self.messages: list[Message] = []
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}")
        if username is not None:
            self.client.username_pw_set(username, password)
        if broker.ca_file is not None:
            self.client.tls_set(ca_certs=str(broker.ca_file))
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, *_: object) -> None:
        client.subscribe([(topic, 1) for topic in self.topics])

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.messages.append(
                Message(message.topic, bytes(message.payload), bool(message.retain), time.monotonic(), time.time())
            )
            self._changed.notify_all()

    def __enter__(self) -> "Subscriber":
        self.client.connect("127.0.0.1", self.broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "the subscription was not acknowledged"
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def wait_for(self, match: Callable[[Message], bool], timeout: float = 10.0, after: float = 0.0) -> Message:
        """The first message (arrived after `after`, a time.monotonic()) that `match` accepts."""
        deadline = time.monotonic() + timeout
        checked = 0
        with self._changed:
            while True:
                for message in self.messages[checked:]:  # each message looked at once, however many arrive
                    if message.at >= after and match(message):
                        return message
                checked = len(self.messages)
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = "\n".join(f"  {m.topic} {m.payload[:120]!r} retain={m.retain}" for m in self.messages[-20:])
                    raise AssertionError(f"no matching message within {timeout} s; the last ones:\n{seen}")
                self._changed.wait(left)

    def latest(self, topic: str) -> Message | None:
        with self._changed:
            return next((m for m in reversed(self.messages) if m.topic == topic), None)


def retained(broker: Mosquitto, *topics: str) -> dict[str, bytes]:
    """What the broker holds retained under `topics` now, as a fresh subscriber receives it.
    The broker sends a new subscription's retained messages before anything published after
    it, so a marker published once subscribed closes the set."""
    marker = f"test/marker/{uuid.uuid4().hex}"
    with Subscriber(broker, *topics, marker) as fresh:
        fresh.publish(marker, "end")
        fresh.wait_for(lambda m: m.topic == marker)
        return {m.topic: m.payload for m in fresh.messages if m.retain and m.payload}
