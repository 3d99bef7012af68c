"""Home Assistant MQTT discovery for dhtlink devices: the topics and payloads, and the two
decisions every publisher makes the same way (docs/home-assistant.md).

Stdlib only: the local bridge (`dhtlink serve --mqtt`, cloud/homeassistant/bridge.py) and
the deployed stack's function (cloud/homeassistant/iot.py) both build their messages here.

Topics, for device ID:
- `homeassistant/device/dhtlink_ID/config`: one retained device discovery message with a
  temperature and a humidity sensor; an empty retained payload removes the device from HA.
- `dhtlink/ID/state`: retained JSON of the newest reading ({"t", "h", "ts", "seq",
  "measured_at"}); the sensors read t and h from it, measured_at is an attribute.
- `dhtlink/ID/availability`: retained `online` while the newest reading is fresh (measured
  less than three delivery periods ago), `offline` after.
- `dhtlink/bridge/status`: retained `online`, and `offline` as the publisher's last will.
A sensor is available only while both say `online` (availability_mode all).

The state rule: only the newest reading of a stored batch may become the state, and only if
it is newer (ts, then seq) than the state already published. Home Assistant stamps a state
with the time it arrives and cannot back-date it, so an older reading sent late through
store-and-forward never replaces a newer one; a late reading that is newest but old arrives
with its device already `offline` (its measurement is past the freshness window), so it
never shows as a current value.
"""

import json
import time
from collections.abc import Iterable
from typing import Any

from cloud import __version__

DISCOVERY_PREFIX = "homeassistant"
HA_STATUS_TOPIC = f"{DISCOVERY_PREFIX}/status"
CONFIG_FILTER = f"{DISCOVERY_PREFIX}/device/+/config"  # every device discovery, to find our orphans
BASE = "dhtlink"
BRIDGE_STATUS_TOPIC = f"{BASE}/bridge/status"
ONLINE = "online"
OFFLINE = "offline"
NODE_PREFIX = "dhtlink_"
# The firmware's defaults (device/config.py DEFAULTS), used where `dhtlink devices set` set none.
FIRMWARE_DEFAULTS = {"interval_s": 60, "batch_size": 20, "max_batch_delay_s": 1200}
# A device is unavailable after this many delivery periods without a fresh reading.
MISSED_PERIODS = 3

SENSORS = (
    # (component key, name, device class, unit, reading key)
    ("temperature", "Temperature", "temperature", "°C", "t"),
    ("humidity", "Humidity", "humidity", "%", "h"),
)


def node_id(device_id: str) -> str:
    return NODE_PREFIX + device_id


def config_topic(device_id: str) -> str:
    return f"{DISCOVERY_PREFIX}/device/{node_id(device_id)}/config"


def device_of_config_topic(topic: str) -> str | None:
    """The dhtlink device a discovery topic belongs to, or None for another integration's."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != DISCOVERY_PREFIX or parts[1] != "device" or parts[3] != "config":
        return None
    return parts[2][len(NODE_PREFIX) :] if parts[2].startswith(NODE_PREFIX) and parts[2] != NODE_PREFIX else None


def state_topic(device_id: str) -> str:
    return f"{BASE}/{device_id}/state"


def availability_topic(device_id: str) -> str:
    return f"{BASE}/{device_id}/availability"


def discovery(device_id: str, device: dict[str, Any] | None = None, expire: bool = False) -> dict[str, Any]:
    """The device discovery payload; `device` is its registry row (firmware version, sensor type,
    settings). With `expire` (a publisher without a connection of its own, hence no last will:
    the deployed stack), Home Assistant itself marks the sensors unavailable once the state is
    older than the freshness window, instead of availability topics."""
    status = (device or {}).get("last_status") or {}
    desired = (device or {}).get("desired") or {}
    node = node_id(device_id)
    info: dict[str, Any] = {
        "ids": [node],
        "name": device_id,
        "mf": "dhtlink",
        "mdl": f"ESP32 + {desired.get('sensor.type', 'DHT')}",
    }
    if status.get("fw"):
        info["sw"] = str(status["fw"])
    components = {
        key: {
            "p": "sensor",
            "name": name,
            "unique_id": f"{node}_{key}",
            "device_class": device_class,
            "state_class": "measurement",
            "unit_of_measurement": unit,
            "suggested_display_precision": 1,
            "value_template": f"{{{{ value_json.{field} }}}}",
            "json_attributes_topic": state_topic(device_id),
            "json_attributes_template": "{{ {'measured_at': value_json.measured_at, 'seq': value_json.seq} | tojson }}",
        }
        for key, name, device_class, unit, field in SENSORS
    }
    payload: dict[str, Any] = {
        "dev": info,
        "o": {"name": "dhtlink", "sw": __version__},
        "cmps": components,
        "state_topic": state_topic(device_id),
        "qos": 1,
    }
    if expire:
        for component in components.values():
            component["expire_after"] = MISSED_PERIODS * delivery_period_s(device)
    else:
        payload["availability"] = [{"topic": BRIDGE_STATUS_TOPIC}, {"topic": availability_topic(device_id)}]
        payload["availability_mode"] = "all"
    return payload


def state(reading: dict[str, Any]) -> dict[str, Any]:
    """The state payload of one reading ({"seq", "ts", "t", "h"})."""
    return {
        "t": round(float(reading["t"]), 1),
        "h": round(float(reading["h"]), 1),
        "ts": int(reading["ts"]),
        "seq": int(reading["seq"]),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(reading["ts"]))),
    }


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _order(reading: dict[str, Any]) -> tuple[int, int]:
    return int(reading["ts"]), int(reading["seq"])


def newest(readings: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    return max(readings, key=_order, default=None)


def next_state(batch: Iterable[dict[str, Any]], published: dict[str, Any] | None) -> dict[str, Any] | None:
    """The reading to publish as the state after `batch` was stored, or None to keep `published`."""
    candidate = newest(batch)
    if candidate is None or (published is not None and _order(candidate) <= _order(published)):
        return None
    return candidate


def delivery_period_s(device: dict[str, Any] | None) -> int:
    """How long a device may take between deliveries: its batch fills (interval × batch size)
    or its batch delay runs out, whichever comes first, never less than one wake interval.
    From the settings `dhtlink devices set` gave it, else the firmware's defaults."""
    settings = {**FIRMWARE_DEFAULTS, **((device or {}).get("desired") or {})}
    interval, batch, delay = (int(settings[key]) for key in ("interval_s", "batch_size", "max_batch_delay_s"))
    return max(interval, min(interval * batch, delay if delay > 0 else interval))


def fresh_until(reading: dict[str, Any] | None, device: dict[str, Any] | None) -> float:
    """When a device whose newest reading is `reading` goes unavailable (0: it already is)."""
    if reading is None:
        return 0
    return int(reading["ts"]) + MISSED_PERIODS * delivery_period_s(device)
