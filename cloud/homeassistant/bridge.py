"""`dhtlink serve --mqtt`: the local endpoint's stored batches on an MQTT broker, as Home
Assistant discovers them (messages: cloud/homeassistant/__init__.py; docs/home-assistant.md).

One worker thread owns everything published; paho's network thread only hands it events:
- a batch stored by ingest (cloud/listeners.py) → its newest reading becomes the state if it
  is newer than the state already published;
- a (re)connection → the bridge's `online`, then every device's discovery, availability and
  state again: a broker that restarted without persistence, or lost our retained messages,
  holds them again;
- `online` on homeassistant/status (Home Assistant started, or its MQTT integration
  reloaded) → the same, after a small random delay so many publishers do not answer at once;
- every `registry_poll_s`: devices added or removed (`dhtlink devices add|remove`, from
  another process) → discovery published, or an empty retained config that removes the
  device from Home Assistant; a removal made while the bridge was down is found on connect,
  from the retained discovery topics the broker sends back;
- every tick: a device whose newest reading is past its freshness window → `offline`.

Nothing is queued while the broker is away: what should be there is kept here and published
whole on the next connection. The bridge's last will marks every device unavailable if the
process dies without saying goodbye (kill -9, power loss).
"""

import queue
import random
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud import homeassistant as ha
from cloud import listeners
from cloud.observability import log
from cloud.stores.base import reading_item

REGISTRY_POLL_S = 10.0
# Home Assistant's docs ask discovery publishers to wait a little, at random, after its `online`.
ANNOUNCE_DELAY_S = (0.5, 3.0)
TICK_S = 0.5
KEEPALIVE_S = 30
RECONNECT_DELAY_S = (1, 30)
QOS = 1


class BrokerUrlError(ValueError):
    """A --mqtt URL that cannot be used; the message says what to write instead."""


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    tls: bool = False
    username: str | None = None

    def describe(self) -> str:
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{host}:{self.port}"


def parse_broker(url: str) -> Broker:
    """mqtt://[user@]HOST[:PORT] or mqtts://...; a password in the URL is refused (it would sit
    in the shell's history and the process list), and so is anything the bridge would ignore."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise BrokerUrlError("the broker URL must start with mqtt:// or mqtts://, e.g. mqtt://192.168.1.10:1883")
    if parts.password is not None:
        raise BrokerUrlError(
            "the broker URL holds a password: leave it out (mqtt://USER@HOST) and give it with "
            "--mqtt-password-file FILE or $DHTLINK_MQTT_PASSWORD"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BrokerUrlError("the broker URL takes no path or query: mqtt://[USER@]HOST[:PORT]")
    try:
        port = parts.port
    except ValueError:
        raise BrokerUrlError("the broker URL's port must be a number from 1 to 65535") from None
    if not parts.hostname:
        raise BrokerUrlError("the broker URL names no host: mqtt://[USER@]HOST[:PORT]")
    tls = parts.scheme == "mqtts"
    username = urllib.parse.unquote(parts.username) if parts.username else None
    return Broker(parts.hostname, port or (8883 if tls else 1883), tls, username)


class HomeAssistantBridge:
    """`with HomeAssistantBridge(store, broker):` publishes the devices of `store` until stopped."""

    def __init__(
        self,
        store: Any,
        broker: Broker,
        password: str | None = None,
        client_id: str = "dhtlink",
        ca_file: str | None = None,
        clock: Callable[[], float] = time.time,
        registry_poll_s: float = REGISTRY_POLL_S,
        announce_delay_s: tuple[float, float] = ANNOUNCE_DELAY_S,
    ) -> None:
        self.store = store
        self.broker = broker
        self.clock = clock
        self.registry_poll_s = registry_poll_s
        self.announce_delay_s = announce_delay_s
        self._jobs: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        # What should be on the broker, per device: registry row, state reading, availability.
        self._devices: dict[str, dict[str, Any]] = {}
        self._state: dict[str, dict[str, Any]] = {}
        self._available: dict[str, bool] = {}
        self._next_poll = 0.0
        self._next_availability = 0.0
        self._announce_at: float | None = None
        self.announcements = 0  # whole re-publications so far (connects and HA restarts)
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311
        )
        if broker.username is not None:
            self._client.username_pw_set(broker.username, password)
        if broker.tls:
            self._client.tls_set(ca_certs=ca_file)
        self._client.will_set(ha.BRIDGE_STATUS_TOPIC, ha.OFFLINE, qos=QOS, retain=True)
        self._client.reconnect_delay_set(*RECONNECT_DELAY_S)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_message = self._on_message

    # -- life cycle ---------------------------------------------------------
    def start(self) -> "HomeAssistantBridge":
        self._load_registry()
        listeners.add(self.store, self.take)
        self._thread = threading.Thread(target=self._work, name="mqtt-bridge", daemon=True)
        self._thread.start()
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=KEEPALIVE_S)
        self._client.loop_start()  # connects, and reconnects after any loss, in paho's thread
        return self

    def stop(self) -> None:
        """Say `offline` (a clean disconnect sends no last will), then disconnect."""
        listeners.remove(self.store, self.take)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.connected.is_set():
            try:
                self._client.publish(ha.BRIDGE_STATUS_TOPIC, ha.OFFLINE, qos=QOS, retain=True).wait_for_publish(2)
            except (RuntimeError, ValueError):  # the connection went at this moment: the will says it instead
                pass
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> "HomeAssistantBridge":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def take(self, device_id: str, stored: list[Any], now: int) -> None:
        """The listener ingest calls after storing a batch: only enqueues."""
        self._jobs.put(("batch", (device_id, [reading_item(reading) for reading in stored])))

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Until every job handed over so far is done (tests)."""
        done = threading.Event()
        self._jobs.put(("call", done.set))
        if not done.wait(timeout):
            raise TimeoutError(f"MQTT bridge still busy after {timeout} s")

    # -- paho's thread: hand over, never publish from here ------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log("WARNING", "MQTT broker refused the connection", broker=self.broker.describe(), reason=str(reason))
            return
        log("INFO", "MQTT broker connected", broker=self.broker.describe())
        client.publish(ha.BRIDGE_STATUS_TOPIC, ha.ONLINE, qos=QOS, retain=True)
        client.subscribe([(ha.HA_STATUS_TOPIC, QOS), (ha.CONFIG_FILTER, QOS)])
        self.connected.set()
        self._jobs.put(("announce", None))

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        log("WARNING", "MQTT broker unreachable; retrying", broker=self.broker.describe())

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log(
                "WARNING",
                "MQTT broker connection lost; reconnecting",
                broker=self.broker.describe(),
                reason=str(reason),
            )

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == ha.HA_STATUS_TOPIC:
            if message.payload == ha.ONLINE.encode():
                self._jobs.put(("ha_online", None))
            return
        device_id = ha.device_of_config_topic(message.topic)
        if device_id is not None and message.payload:
            self._jobs.put(("config_seen", device_id))

    # -- the worker ---------------------------------------------------------
    def _work(self) -> None:
        handlers: dict[str, Callable[[Any], None]] = {
            "batch": lambda job: self._on_batch(*job),
            "announce": lambda _: self._announce(),
            "ha_online": lambda _: self._schedule_announce(),
            "config_seen": self._on_config_seen,
            "call": lambda callback: callback(),
        }
        while not self._stop.is_set():
            try:
                kind, job = self._jobs.get(timeout=TICK_S)
            except queue.Empty:
                kind, job = "", None
            try:
                if kind:
                    handlers[kind](job)
                self._tick()
            except Exception as error:  # a store or broker hiccup must not end the bridge
                log(
                    "ERROR",
                    "MQTT bridge step failed",
                    job=kind or "tick",
                    error=type(error).__name__,
                    detail=str(error)[:200],
                )

    def _tick(self) -> None:
        now = time.monotonic()
        if self._announce_at is not None and now >= self._announce_at:
            self._announce()
        if now >= self._next_poll:
            self._poll_registry()
        if now >= self._next_availability:  # a tick's worth at most, however busy the queue
            self._next_availability = now + TICK_S
            for device_id in list(self._devices):
                self._publish_availability(device_id)

    def _schedule_announce(self) -> None:
        self._announce_at = time.monotonic() + random.uniform(*self.announce_delay_s)

    def _publish(self, topic: str, payload: bytes | str) -> None:
        if self.connected.is_set():
            self._client.publish(topic, payload, qos=QOS, retain=True)

    def _load_registry(self) -> None:
        self._devices = {row["device_id"]: row for row in self.store.list_devices()}
        self._state = {}
        for device_id in self._devices:
            reading = self.store.latest_reading(device_id)
            if reading is not None:
                self._state[device_id] = reading
        self._next_poll = time.monotonic() + self.registry_poll_s

    def _announce(self) -> None:
        """Everything again: bridge status, then each device's discovery, availability, state."""
        self._announce_at = None
        if not self.connected.is_set():
            return  # the next connection announces
        self._poll_registry(publish_changes=False)
        self._publish(ha.BRIDGE_STATUS_TOPIC, ha.ONLINE)
        for device_id in self._devices:
            self._publish_device(device_id)
        self.announcements += 1
        log("INFO", "Home Assistant discovery published", devices=len(self._devices))

    def _publish_device(self, device_id: str) -> None:
        self._publish(ha.config_topic(device_id), ha.encode(ha.discovery(device_id, self._devices[device_id])))
        self._available.pop(device_id, None)  # published afresh below
        self._publish_availability(device_id)
        reading = self._state.get(device_id)
        if reading is not None:
            self._publish(ha.state_topic(device_id), ha.encode(ha.state(reading)))

    def _publish_availability(self, device_id: str) -> None:
        online = self.clock() < ha.fresh_until(self._state.get(device_id), self._devices.get(device_id))
        if self._available.get(device_id) != online and self.connected.is_set():
            self._publish(ha.availability_topic(device_id), ha.ONLINE if online else ha.OFFLINE)
            self._available[device_id] = online

    def _poll_registry(self, publish_changes: bool = True) -> None:
        self._next_poll = time.monotonic() + self.registry_poll_s
        rows = {row["device_id"]: row for row in self.store.list_devices()}
        for device_id in set(self._devices) - set(rows):
            self._remove(device_id)
        for device_id, row in rows.items():
            known = self._devices.get(device_id)
            self._devices[device_id] = row
            changed = known is None or ha.discovery(device_id, known) != ha.discovery(device_id, row)
            if changed and publish_changes:
                self._publish_device(device_id)  # new, or its firmware or sensor changed

    def _remove(self, device_id: str) -> None:
        """Out of Home Assistant: empty retained messages delete the device and its retained topics."""
        for topic in (ha.config_topic(device_id), ha.state_topic(device_id), ha.availability_topic(device_id)):
            self._publish(topic, b"")
        self._devices.pop(device_id, None)
        self._state.pop(device_id, None)
        self._available.pop(device_id, None)
        log("INFO", "device removed from Home Assistant", device_id=device_id)

    def _on_config_seen(self, device_id: str) -> None:
        """A retained dhtlink discovery on the broker: if its device is gone, remove it too."""
        if device_id not in self._devices and self.store.get_device(device_id) is None:
            self._remove(device_id)

    def _on_batch(self, device_id: str, readings: list[dict[str, Any]]) -> None:
        if device_id not in self._devices:
            row = self.store.get_device(device_id)
            if row is None:
                return  # removed since it was stored
            self._devices[device_id] = row
            self._publish_device(device_id)
        reading = ha.next_state(readings, self._state.get(device_id))
        if reading is None:
            return  # all older than the state already published: late readings stay history
        self._state[device_id] = reading
        self._publish(ha.state_topic(device_id), ha.encode(ha.state(reading)))
        self._publish_availability(device_id)
