"""The local endpoint over real HTTP on loopback."""

import json
import time

import requests

from cloud import signing
from cloud.local import LocalEndpoint


def post(endpoint, secret, device_id, readings, path="/data"):
    body = json.dumps({"device_id": device_id, "readings": readings}).encode()
    headers = signing.signed_headers(secret, device_id, int(time.time()), path, body)
    return requests.post(endpoint.url + path, data=body, headers=headers, timeout=5)


def test_post_then_read_over_http(endpoint):
    secret = endpoint.add_device("kitchen")
    now = int(time.time())
    answer = post(endpoint, secret, "kitchen", [{"seq": 0, "ts": now - 5, "t": 22.5, "h": 40.0}])
    assert answer.status_code == 200 and answer.json()["accepted"] == 1
    auth = {"Authorization": f"Bearer {endpoint.read_token}"}
    latest = requests.get(endpoint.url + "/data/latest", params={"device_id": "kitchen"}, headers=auth, timeout=5)
    assert latest.json()["t"] == 22.5


def test_unknown_routes_and_oversize_bodies(endpoint):
    assert requests.get(endpoint.url + "/nope", timeout=5).status_code == 404
    wrong_method = requests.post(endpoint.url + "/devices", data=b"{}", timeout=5)
    assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "method_not_allowed"
    assert requests.post(endpoint.url + "/nope", data=b"{}", timeout=5).json()["error"] == "not_found"
    big = requests.post(
        endpoint.url + "/data", data=b"x" * 40_000, headers={"Content-Type": "application/json"}, timeout=5
    )
    assert big.status_code == 413 and big.json()["error"] == "payload_too_large"


def test_restart_keeps_readings_devices_and_token(tmp_path):
    reading = {"seq": 3, "ts": int(time.time()), "t": 1.0, "h": 2.0}
    with LocalEndpoint(tmp_path) as first:
        secret = first.add_device("porch")
        token = first.read_token
        assert post(first, secret, "porch", [reading]).ok
    with LocalEndpoint(tmp_path) as second:
        assert second.read_token == token
        assert second.store.latest_reading("porch")["seq"] == 3
        assert post(second, secret, "porch", [reading]).json()["duplicates"] == 1
    assert (tmp_path / "read-token").stat().st_mode & 0o077 == 0


def test_concurrent_devices_store_everything(endpoint):
    from concurrent.futures import ThreadPoolExecutor

    secrets_ = {f"d{i}": endpoint.add_device(f"d{i}") for i in range(8)}
    now = int(time.time())

    def send(device_id):
        for batch in range(5):
            readings = [{"seq": batch * 10 + k, "ts": now - 100 + k, "t": 20.0, "h": 50.0} for k in range(10)]
            assert post(endpoint, secrets_[device_id], device_id, readings).json()["accepted"] == 10

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, secrets_))
    for device_id in secrets_:
        assert len(endpoint.store.query_readings(device_id, limit=100)[0]) == 50


def test_answers_are_signed_over_the_exact_bytes_on_the_wire(endpoint):
    secret = endpoint.add_device("shed")
    now = int(time.time())

    def send(readings, timestamp=None, device_secret=secret):
        body = json.dumps({"device_id": "shed", "readings": readings}).encode()
        headers = signing.signed_headers(device_secret, "shed", timestamp or int(time.time()), "/data", body)
        answer = requests.post(endpoint.url + "/data", data=body, headers=headers, timeout=5)
        signed = signing.verify_answer(
            secret, headers["X-Signature"], answer.status_code, answer.content, answer.headers.get("X-Signature")
        )
        return answer.status_code, answer.json().get("error"), signed

    first = {"seq": 0, "ts": now - 5, "t": 22.5, "h": 40.0}
    assert send([first]) == (200, None, True)
    assert send([{**first, "t": 23.0}]) == (409, "seq_conflict", True)
    assert send([]) == (400, "bad_batch_size", True)
    assert send([first], timestamp=now - 3600) == (401, "stale_timestamp", True)
    assert send([first], device_secret="ee" * 32) == (401, "unauthorized", False)
