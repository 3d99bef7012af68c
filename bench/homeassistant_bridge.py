"""Home Assistant bridge (`dhtlink serve --mqtt`): how soon a stored batch is Home
Assistant's state, and how long a whole re-publication takes.

One local endpoint (SQLite) with the bridge, Debian's mosquitto on a loopback port (`make
mosquitto`), DEVICES registered devices, and a subscriber standing in for Home Assistant.
1. BATCHES signed batches of 20 readings, round-robin over the devices, one at a time over
   a keep-alive connection: the POST round trip, and the time from sending the POST to the
   subscriber receiving that batch's state (p50/p99/max).
2. Home Assistant announces `online` (the bridge's random delay set to 0 here): the time
   until the subscriber has every device's discovery, availability and state again.

    .venv/bin/python bench/homeassistant_bridge.py [--devices 200] [--batches 300] [--json]
"""

import argparse
import http.client
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cloud import homeassistant as ha  # noqa: E402
from cloud import observability, signing  # noqa: E402
from cloud.homeassistant.bridge import HomeAssistantBridge, parse_broker  # noqa: E402
from cloud.local import LocalEndpoint  # noqa: E402
from tests.homeassistant.broker import Mosquitto, Subscriber  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def figures(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(values) * 1000, 2),
        "p99_ms": round(percentile(values, 0.99) * 1000, 2),
        "max_ms": round(max(values) * 1000, 2),
    }


def is_state(message, topic: str, seq: int) -> bool:
    return message.topic == topic and json.loads(message.payload)["seq"] == seq


def run(devices: int, batches: int) -> dict:
    observability.set_output(io.StringIO())
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(Path(tmp)) as broker:
        with LocalEndpoint(Path(tmp) / "data") as endpoint:
            names = [f"bench-{i:04d}" for i in range(devices)]
            secrets = {name: endpoint.add_device(name) for name in names}
            bridge = HomeAssistantBridge(endpoint.store, parse_broker(broker.url), announce_delay_s=(0.0, 0.0))
            with bridge, Subscriber(broker, "homeassistant/#", "dhtlink/#") as watch:
                if not bridge.connected.wait(10):
                    raise SystemExit("the bridge did not connect to mosquitto")
                connection = http.client.HTTPConnection(endpoint.host, endpoint.port)
                round_trips, to_state = [], []
                now = int(time.time())
                for n in range(batches):
                    name = names[n % devices]
                    first = (n // devices) * 20
                    readings = [
                        {"seq": first + i, "ts": now - 300 + (n // devices) * 20 + i, "t": 20.0, "h": 50.0}
                        for i in range(20)
                    ]
                    body = json.dumps({"device_id": name, "readings": readings}).encode()
                    headers = signing.signed_headers(secrets[name], name, int(time.time()), "/data", body)
                    headers["Content-Type"] = "application/json"
                    sent = time.monotonic()
                    connection.request("POST", "/data", body=body, headers=headers)
                    answer = connection.getresponse()
                    answer.read()
                    round_trips.append(time.monotonic() - sent)
                    if answer.status != 200:
                        raise SystemExit(f"POST answered {answer.status}")
                    topic, newest = ha.state_topic(name), first + 19
                    state = watch.wait_for(lambda m, t=topic, seq=newest: is_state(m, t, seq), after=sent)
                    to_state.append(state.at - sent)
                connection.close()

                reported = names[:batches]  # the devices with a state to publish again
                expected = {topic(name) for name in names for topic in (ha.config_topic, ha.availability_topic)}
                expected |= {ha.state_topic(name) for name in reported}
                watch.messages.clear()  # only the re-publication from here on
                mark = time.monotonic()
                watch.publish(ha.HA_STATUS_TOPIC, "online")
                arrivals: dict[str, float] = {}
                deadline = time.monotonic() + 120
                while len(arrivals) < len(expected):  # polled, so the waiting costs the bridge no CPU
                    if time.monotonic() > deadline:
                        raise SystemExit(f"re-publication incomplete: {len(arrivals)} of {len(expected)} topics")
                    time.sleep(0.05)
                    arrivals = {m.topic: m.at for m in list(watch.messages) if m.topic in expected}
                last = max(arrivals.values())
                announce_s = last - mark
    observability.set_output(None)
    return {
        "devices": devices,
        "batches": batches,
        "post_round_trip": figures(round_trips),
        "post_to_state": figures(to_state),
        "republish_all_ms": round(announce_s * 1000, 1),
        "republish_messages": 2 * devices + min(devices, batches) + 1,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.devices < 1 or args.batches < 1:
        parser.error("--devices and --batches must be at least 1")
    result = run(args.devices, args.batches)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['devices']} devices, {result['batches']} batches of 20 (load average {result['load_average_1m']})")
    for name in ("post_round_trip", "post_to_state"):
        f = result[name]
        print(f"  {name:<16} p50 {f['p50_ms']} ms  p99 {f['p99_ms']} ms  max {f['max_ms']} ms")
    print(f"  HA online -> all {result['republish_messages']} messages again: {result['republish_all_ms']} ms")


if __name__ == "__main__":
    main()
