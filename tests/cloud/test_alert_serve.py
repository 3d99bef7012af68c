"""`dhtlink serve` evaluates alerts beside the endpoint: a rule added with the CLI's
library, a reading over HTTP, a signed webhook on loopback, as a user would see it."""

import json
import signal
import subprocess
import time

import requests

from cloud import signing
from cloud.alerts import admin as alerts_admin
from host_tools import registry
from tests.cloud.test_serve_cli import DHTLINK, free_port
from tests.cloud.webhook_receiver import WebhookReceiver


def test_serve_sends_a_signed_webhook_when_a_reading_crosses_a_rule(tmp_path):
    data = tmp_path / "data"
    store = registry.local_store(data)
    secret = registry.add_device(store, "porch")
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(data), "LISTEN_PORT": str(port)}
    with WebhookReceiver() as receiver:
        _rule, key = alerts_admin.add_rule(store, {"device": "porch", "metric": "t", "below": 2}, receiver.url)
        receiver.secret = key.webhook_secret
        process = subprocess.Popen(
            [DHTLINK, "serve"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        try:
            process.stdout.readline()
            body = json.dumps(
                {"device_id": "porch", "readings": [{"seq": 0, "ts": int(time.time()) - 5, "t": -3.5, "h": 80.0}]}
            )
            headers = signing.signed_headers(secret, "porch", int(time.time()), "/data", body.encode())
            deadline = time.monotonic() + 10
            while True:
                try:
                    answer = requests.post(f"http://127.0.0.1:{port}/data", data=body, headers=headers, timeout=2)
                    break
                except requests.ConnectionError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            assert answer.status_code == 200 and answer.json()["accepted"] == 1
            while not receiver.received and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            process.send_signal(signal.SIGINT)
            out, _ = process.communicate(timeout=15)
    (got,) = receiver.received
    assert got.verified and got.document["type"] == "alert.open" and got.document["value"] == -3.5
    assert process.returncode == 0
    assert receiver.url.split("?")[0] not in out and key.webhook_secret not in out, "never in serve's logs"
