"""The pure part of the Home Assistant messages: topics, the state rule, the freshness
window, and the --mqtt URL."""

import pytest

from cloud import homeassistant as ha
from cloud.homeassistant.bridge import Broker, BrokerUrlError, parse_broker


def reading(seq, ts, t=20.0, h=50.0):
    return {"seq": seq, "ts": ts, "t": t, "h": h}


def test_only_the_newest_reading_of_a_batch_and_only_if_newer_becomes_the_state():
    batch = [reading(5, 1000), reading(6, 1060), reading(7, 1030)]  # a clock corrected mid-batch
    assert ha.next_state(batch, None) == reading(6, 1060)
    assert ha.next_state(batch, reading(4, 1060)) == reading(6, 1060), "same time: the higher seq is newer"
    assert ha.next_state(batch, reading(6, 1060)) is None, "the state HA holds already"
    assert ha.next_state(batch, reading(3, 2000)) is None, "older than what HA holds: history only"
    assert ha.next_state([], None) is None


@pytest.mark.parametrize(
    ("desired", "period"),
    [
        (None, 1200),  # the firmware's defaults: 60 s x 20 = 1200 s, also its batch delay
        ({"interval_s": 60, "batch_size": 1}, 60),
        ({"interval_s": 300, "batch_size": 20}, 1200),  # the batch delay comes first
        ({"interval_s": 300, "batch_size": 20, "max_batch_delay_s": 0}, 300),  # 0: every reading is sent
        ({"interval_s": 3600, "batch_size": 20}, 3600),  # never less than one wake
    ],
)
def test_the_delivery_period_follows_the_settings_then_the_firmware_defaults(desired, period):
    assert ha.delivery_period_s({"desired": desired}) == period
    assert ha.fresh_until(reading(0, 10_000), {"desired": desired}) == 10_000 + 3 * period
    assert ha.fresh_until(None, {"desired": desired}) == 0


def test_config_topics_name_their_device_and_only_ours():
    assert ha.config_topic("porch-1") == "homeassistant/device/dhtlink_porch-1/config"
    assert ha.device_of_config_topic("homeassistant/device/dhtlink_porch-1/config") == "porch-1"
    for other in (
        "homeassistant/device/zigbee_0x1234/config",
        "homeassistant/device/dhtlink_/config",
        "homeassistant/sensor/dhtlink_porch/config",
        "homeassistant/device/dhtlink_porch/state",
    ):
        assert ha.device_of_config_topic(other) is None, other


def test_the_state_rounds_to_the_sensors_resolution_and_says_when_it_was_measured():
    assert ha.state(reading(17, 1795389990, 21.4000001, 45.25)) == {
        "t": 21.4,
        "h": 45.2,
        "ts": 1795389990,
        "seq": 17,
        "measured_at": "2026-11-22T23:26:30Z",
    }


def test_discovery_without_a_connection_expires_instead_of_availability_topics():
    live = ha.discovery("porch")
    assert [a["topic"] for a in live["availability"]] == ["dhtlink/bridge/status", "dhtlink/porch/availability"]
    assert all("expire_after" not in c for c in live["cmps"].values())
    deployed = ha.discovery("porch", {"desired": {"interval_s": 60, "batch_size": 1}}, expire=True)
    assert "availability" not in deployed
    assert {c["expire_after"] for c in deployed["cmps"].values()} == {180}


def test_discovery_names_the_firmware_a_board_reported():
    info = ha.discovery("porch", {"last_status": {"fw": "0.3.1"}, "desired": {"sensor.type": "DHT11"}})["dev"]
    assert info["sw"] == "0.3.1" and info["mdl"] == "ESP32 + DHT11"


@pytest.mark.parametrize(
    ("url", "broker"),
    [
        ("mqtt://192.168.1.10", Broker("192.168.1.10", 1883)),
        ("mqtts://ha.lan", Broker("ha.lan", 8883, tls=True)),
        ("mqtt://dhtlink@127.0.0.1:1884", Broker("127.0.0.1", 1884, username="dhtlink")),
        ("mqtt://d%40x@[::1]:1883/", Broker("::1", 1883, username="d@x")),
    ],
)
def test_broker_urls(url, broker):
    assert parse_broker(url) == broker


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mqtt://u:s3cret@h", "holds a password"),
        ("tcp://h:1883", "mqtt:// or mqtts://"),
        ("mqtt://:1883", "names no host"),
        ("mqtt://h:port", "port must be a number"),
        ("mqtt://h?x=1", "no path or query"),
    ],
)
def test_bad_broker_urls_say_what_to_write(url, says):
    with pytest.raises(BrokerUrlError, match=says) as refused:
        parse_broker(url)
    assert "s3cret" not in str(refused.value)


def test_the_described_broker_never_holds_a_password():
    assert Broker("::1", 1883, username="dhtlink").describe() == "mqtt://dhtlink@[::1]:1883"
