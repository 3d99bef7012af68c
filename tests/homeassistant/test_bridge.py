"""The Home Assistant bridge beside a real local endpoint and a real mosquitto on loopback:
batches go in as signed HTTP POSTs, and what a subscriber to homeassistant/# and dhtlink/#
(Home Assistant's view) receives is checked."""

import json
import time
from typing import Any

import pytest
import requests

from cloud import homeassistant as ha
from cloud import signing
from cloud.homeassistant.bridge import HomeAssistantBridge, parse_broker
from host_tools import registry
from tests.homeassistant.broker import Subscriber, retained

DEVICE = "greenhouse-01"
TOPICS = ("homeassistant/#", "dhtlink/#")
FAST = {"registry_poll_s": 0.3, "announce_delay_s": (0.2, 0.6)}


def post(endpoint: Any, secret: str, readings: list[dict[str, Any]], device_id: str = DEVICE) -> dict[str, Any]:
    body = json.dumps({"device_id": device_id, "readings": readings}).encode()
    headers = signing.signed_headers(secret, device_id, int(time.time()), "/data", body)
    answer = requests.post(f"{endpoint.url}/data", data=body, headers=headers, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def readings(first_seq: int, *ts_t_h: tuple[int, float, float]) -> list[dict[str, Any]]:
    return [{"seq": first_seq + i, "ts": ts, "t": t, "h": h} for i, (ts, t, h) in enumerate(ts_t_h)]


def bridge_for(endpoint: Any, broker: Any, **options: Any) -> HomeAssistantBridge:
    return HomeAssistantBridge(endpoint.store, parse_broker(broker.url), **{**FAST, **options})


def config_of(message: Any) -> dict[str, Any]:
    return json.loads(message.payload)


@pytest.fixture
def device(endpoint):
    return endpoint.add_device(DEVICE)


def test_first_batch_gives_a_retained_discovery_with_both_sensors_and_its_newest_state(endpoint, broker, device):
    now = int(time.time())
    with bridge_for(endpoint, broker) as bridge, Subscriber(broker, *TOPICS) as watch:
        assert bridge.connected.wait(5)
        posted = time.monotonic()
        post(endpoint, device, readings(0, (now - 120, 20.0, 50.0), (now - 60, 20.5, 51.0), (now - 1, 21.4, 45.2)))
        state = watch.wait_for(lambda m: m.topic == ha.state_topic(DEVICE), timeout=5, after=posted)
        assert json.loads(state.payload) == {
            "t": 21.4,
            "h": 45.2,
            "ts": now - 1,
            "seq": 2,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 1)),
        }
    held = retained(broker, *TOPICS)
    config = json.loads(held[ha.config_topic(DEVICE)])
    assert config["dev"]["ids"] == ["dhtlink_greenhouse-01"] and config["dev"]["name"] == DEVICE
    assert config["o"]["name"] == "dhtlink"
    assert config["state_topic"] == "dhtlink/greenhouse-01/state"
    assert config["availability_mode"] == "all"
    assert [a["topic"] for a in config["availability"]] == [ha.BRIDGE_STATUS_TOPIC, ha.availability_topic(DEVICE)]
    temperature, humidity = config["cmps"]["temperature"], config["cmps"]["humidity"]
    assert temperature["p"] == humidity["p"] == "sensor"
    assert (temperature["device_class"], temperature["unit_of_measurement"]) == ("temperature", "°C")
    assert (humidity["device_class"], humidity["unit_of_measurement"]) == ("humidity", "%")
    assert temperature["state_class"] == humidity["state_class"] == "measurement"
    assert temperature["unique_id"] != humidity["unique_id"]
    assert temperature["unique_id"].startswith("dhtlink_greenhouse-01")
    assert json.loads(held[ha.state_topic(DEVICE)])["seq"] == 2
    assert held[ha.availability_topic(DEVICE)] == b"online"
    # Stopped cleanly: the bridge said goodbye itself, so every device shows unavailable.
    assert held[ha.BRIDGE_STATUS_TOPIC] == b"offline"


def test_discovery_follows_the_registry_and_starts_unavailable(endpoint, broker, device):
    with bridge_for(endpoint, broker) as bridge, Subscriber(broker, *TOPICS) as watch:
        assert bridge.connected.wait(5)
        watch.wait_for(lambda m: m.topic == ha.config_topic(DEVICE))
        registry.add_device(endpoint.store, "attic")
        added = watch.wait_for(lambda m: m.topic == ha.config_topic("attic"), timeout=5)
        assert config_of(added)["dev"]["name"] == "attic"
        held = retained(broker, *TOPICS)
    assert held[ha.availability_topic("attic")] == b"offline", "no reading yet"
    assert ha.state_topic("attic") not in held
    assert held[ha.BRIDGE_STATUS_TOPIC] == b"online"


def test_a_late_batch_never_replaces_a_newer_state(endpoint, broker, device):
    now = int(time.time())
    with bridge_for(endpoint, broker) as bridge, Subscriber(broker, *TOPICS) as watch:
        assert bridge.connected.wait(5)
        post(endpoint, device, readings(0, (now - 10, 22.0, 40.0)))
        watch.wait_for(lambda m: m.topic == ha.state_topic(DEVICE) and json.loads(m.payload)["seq"] == 0)
        # Store-and-forward from before the clock was corrected: higher seqs, older readings.
        answer = post(endpoint, device, readings(1, (now - 3000, 5.0, 90.0), (now - 2900, 5.5, 91.0)))
        assert answer["accepted"] == 2
        bridge.wait_idle()
        held = retained(broker, *TOPICS)
    states = [json.loads(m.payload) for m in watch.messages if m.topic == ha.state_topic(DEVICE)]
    assert [state["seq"] for state in states] == [0], "the older readings stay history, never the state"
    assert json.loads(held[ha.state_topic(DEVICE)])["t"] == 22.0


def test_a_late_newest_reading_arrives_unavailable_not_as_now(endpoint, broker, device):
    """A board back after hours offline sends its spool: the newest reading of that batch is
    the newest there is, so it becomes the state, but it is past its freshness window (three
    delivery periods, here the firmware's default 20 min each): HA shows the device unavailable."""
    now = int(time.time())
    with bridge_for(endpoint, broker) as bridge, Subscriber(broker, *TOPICS):
        assert bridge.connected.wait(5)
        post(endpoint, device, readings(0, (now - 4 * 3600, 18.0, 60.0), (now - 3 * 3600 - 60, 18.2, 61.0)))
        bridge.wait_idle()
        held = retained(broker, *TOPICS)
        assert json.loads(held[ha.state_topic(DEVICE)])["seq"] == 1
        assert held[ha.availability_topic(DEVICE)] == b"offline"
        post(endpoint, device, readings(2, (now - 5, 19.0, 58.0)))
        bridge.wait_idle()
        held = retained(broker, *TOPICS)
    assert json.loads(held[ha.state_topic(DEVICE)])["seq"] == 2
    assert held[ha.availability_topic(DEVICE)] == b"online"


def says_available(payload: bytes):
    return lambda m: m.topic == ha.availability_topic(DEVICE) and m.payload == payload


def test_a_device_goes_unavailable_after_three_delivery_periods(endpoint, broker, device):
    now = int(time.time())
    endpoint.store.set_desired(DEVICE, {"interval_s": 10, "batch_size": 1})  # one delivery every 10 s
    clock = [float(now)]
    with bridge_for(endpoint, broker, clock=lambda: clock[0]) as bridge, Subscriber(broker, *TOPICS) as watch:
        assert bridge.connected.wait(5)
        post(endpoint, device, readings(0, (now, 21.0, 50.0)))
        watch.wait_for(lambda m: m.topic == ha.availability_topic(DEVICE) and m.payload == b"online")
        clock[0] = now + 29
        bridge.wait_idle()
        time.sleep(0.6)  # past a tick
        assert watch.latest(ha.availability_topic(DEVICE)).payload == b"online"
        # `after`: the bridge also said offline at connect, before the first reading was stored
        moved = time.monotonic()
        clock[0] = now + 30
        watch.wait_for(says_available(b"offline"), timeout=3, after=moved)
        clock[0] = now + 40
        post(endpoint, device, readings(1, (now + 5, 21.5, 50.0)))  # newer, but measured past its window already
        bridge.wait_idle()
        assert watch.latest(ha.availability_topic(DEVICE)).payload == b"offline"
        moved = time.monotonic()
        post(endpoint, device, readings(2, (now + 25, 21.6, 50.0)))
        watch.wait_for(says_available(b"online"), timeout=3, after=moved)


def test_broker_restart_ends_with_everything_republished(endpoint, broker, device):
    now = int(time.time())
    with bridge_for(endpoint, broker) as bridge:
        assert bridge.connected.wait(5)
        post(endpoint, device, readings(0, (now - 2, 23.1, 44.0)))
        bridge.wait_idle()
        before = bridge.announcements
        broker.restart()  # no persistence: every retained message is gone
        deadline = time.monotonic() + 15
        while bridge.announcements == before:
            assert time.monotonic() < deadline, "the bridge did not reconnect and re-announce"
            time.sleep(0.1)
        bridge.wait_idle()
        held = retained(broker, *TOPICS)
    assert held[ha.BRIDGE_STATUS_TOPIC] == b"online"
    assert json.loads(held[ha.config_topic(DEVICE)])["cmps"].keys() == {"temperature", "humidity"}
    assert json.loads(held[ha.state_topic(DEVICE)])["t"] == 23.1
    assert held[ha.availability_topic(DEVICE)] == b"online"


def test_home_assistant_online_gets_everything_again_after_a_small_random_delay(endpoint, broker, device):
    now = int(time.time())
    with bridge_for(endpoint, broker) as bridge, Subscriber(broker, *TOPICS) as ha_side:
        assert bridge.connected.wait(5)
        post(endpoint, device, readings(0, (now - 2, 19.9, 55.5)))
        bridge.wait_idle()
        ha_side.publish(ha.HA_STATUS_TOPIC, "offline")
        announced = time.monotonic()
        ha_side.publish(ha.HA_STATUS_TOPIC, "online")
        config = ha_side.wait_for(lambda m: m.topic == ha.config_topic(DEVICE), after=announced, timeout=5)
        state = ha_side.wait_for(lambda m: m.topic == ha.state_topic(DEVICE), after=announced, timeout=5)
    assert config.at - announced >= 0.2, "answered at once: HA asks for a random delay"
    assert json.loads(state.payload)["t"] == 19.9
    assert ha_side.latest(ha.availability_topic(DEVICE)).payload == b"online"


def test_removing_a_device_removes_it_from_home_assistant(endpoint, broker, device):
    now = int(time.time())
    with bridge_for(endpoint, broker) as bridge, Subscriber(broker, *TOPICS) as watch:
        assert bridge.connected.wait(5)
        post(endpoint, device, readings(0, (now - 2, 20.0, 50.0)))
        bridge.wait_idle()
        removed = time.monotonic()
        registry.remove_device(endpoint.store, DEVICE)
        empty = watch.wait_for(lambda m: m.topic == ha.config_topic(DEVICE) and not m.payload, after=removed)
        assert empty.at - removed < 5
        held = retained(broker, *TOPICS)
    assert not any(DEVICE in topic for topic in held), held


def test_a_device_removed_while_the_bridge_was_down_is_removed_on_connect(endpoint, broker, device):
    now = int(time.time())
    registry.add_device(endpoint.store, "attic")
    with bridge_for(endpoint, broker) as bridge:
        assert bridge.connected.wait(5)
        post(endpoint, device, readings(0, (now - 2, 20.0, 50.0)))
        bridge.wait_idle()
    registry.remove_device(endpoint.store, DEVICE)
    with bridge_for(endpoint, broker) as bridge:
        assert bridge.connected.wait(5)
        deadline = time.monotonic() + 5
        while ha.config_topic(DEVICE) in (held := retained(broker, *TOPICS)):
            assert time.monotonic() < deadline, "the removed device's retained discovery stayed"
            time.sleep(0.1)
    assert not any(DEVICE in topic for topic in held), held
    assert ha.config_topic("attic") in held


def test_a_device_registered_after_the_last_poll_is_discovered_by_its_first_batch(endpoint, broker):
    now = int(time.time())
    with bridge_for(endpoint, broker, registry_poll_s=3600) as bridge, Subscriber(broker, *TOPICS) as watch:
        assert bridge.connected.wait(5)
        bridge.wait_idle()
        secret = endpoint.add_device("shed")  # the bridge's next registry poll is an hour away
        posted = time.monotonic()
        post(endpoint, secret, readings(0, (now - 1, 15.5, 66.0)), device_id="shed")
        config = watch.wait_for(lambda m: m.topic == ha.config_topic("shed"), timeout=5)
        state = watch.wait_for(lambda m: m.topic == ha.state_topic("shed"), timeout=5)
    assert config.at - posted < 5 and config.at <= state.at, "the device before its first value"
    assert json.loads(config.payload)["cmps"].keys() == {"temperature", "humidity"}
    assert json.loads(state.payload)["t"] == 15.5
