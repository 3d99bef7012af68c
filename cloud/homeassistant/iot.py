"""The deployed stack's Home Assistant publisher (optional: the template's HomeAssistant
parameter): the readings table's stream → each device's discovery and newest state,
retained, on AWS IoT Core's MQTT broker. The user's Mosquitto bridges those topics in from
IoT Core (docs/home-assistant.md says why IoT Core, and how).

Stateless, so the state rule reads the registry: a batch's newest reading becomes the state
only if it is the device's newest stored reading (`last_reading`, which ingest moves only
forward in time) — a batch the stream delivers after a newer one publishes no state — and
only while it is fresh: with no connection of its own, hence no last will, this publisher
lets Home Assistant expire the sensors (`expire_after`), so a late reading past its window
would otherwise show as a current value until it expired.
"""

import functools
import time
from typing import Any

from cloud import homeassistant as ha
from cloud.alerts.stream import readings_by_device
from cloud.observability import log, metrics
from cloud.settings import lambda_store

QOS = 1


@functools.cache
def iot_data_client() -> Any:
    """An IoT data-plane client on this account's own ATS endpoint (looked up once)."""
    import boto3

    address = boto3.client("iot").describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"]
    return boto3.client("iot-data", endpoint_url=f"https://{address}")


def publish(client: Any, topic: str, payload: dict[str, Any]) -> None:
    client.publish(topic=topic, qos=QOS, retain=True, payload=ha.encode(payload))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Each device's discovery and state; a device whose publish fails is reported at its
    first record (ReportBatchItemFailures): Lambda retries from there (retained publishes
    are idempotent), and after the template's retries the records go to the on-failure queue."""
    _settings, store = lambda_store()
    client = iot_data_client()
    now = time.time()
    states = 0
    failed: list[str] = []
    batches = readings_by_device(event)
    for device_id, (first, readings) in batches.items():
        try:
            states += _publish_device(client, store, device_id, readings, now)
        except Exception as error:  # noqa: BLE001 - any failure: this device's records are retried, not lost
            log("ERROR", "Home Assistant publish failed", device_id=device_id, error=f"{type(error).__name__}: {error}")
            failed.append(first)
            break  # Lambda retries from the lowest reported record: the devices after it are retried too
    log("INFO", "Home Assistant messages published", devices=len(batches), states=states, failed=len(failed))
    metrics("homeassistant", StatesPublished=states)
    return {"devices": len(batches), "states": states, "batchItemFailures": [{"itemIdentifier": f} for f in failed]}


def _publish_device(client: Any, store: Any, device_id: str, readings: list[dict[str, Any]], now: float) -> int:
    """Discovery, and the state if the batch holds the device's newest stored reading, still
    fresh; how many states it published (0 or 1)."""
    device = store.get_device_without_secret(device_id)  # the role may read no secret
    if device is None:
        return 0  # removed since: publishing would bring it back into Home Assistant
    publish(client, ha.config_topic(device_id), ha.discovery(device_id, device, expire=True))
    newest = ha.newest(readings)
    if newest is None or not _is_newest_stored(newest, device.get("last_reading")):
        return 0
    if now >= ha.fresh_until(newest, device):
        return 0
    publish(client, ha.state_topic(device_id), ha.state(newest))
    return 1


def forget(client: Any, device_id: str) -> None:
    """Remove a device from Home Assistant: empty retained messages delete its discovery and
    its state on IoT Core, and through the bridge on the user's Mosquitto (`dhtlink devices
    remove --aws`; the function publishes nothing more for a device no longer registered)."""
    for topic in (ha.config_topic(device_id), ha.state_topic(device_id)):
        client.publish(topic=topic, qos=QOS, retain=True, payload=b"")


def _is_newest_stored(reading: dict[str, Any], last: dict[str, Any] | None) -> bool:
    return last is None or (int(reading["ts"]), int(reading["seq"])) >= (int(last["ts"]), int(last["seq"]))
