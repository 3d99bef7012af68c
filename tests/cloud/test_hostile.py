"""The hostile table (tests/cloud/hostile.py) against the Lambda handlers on moto and `dhtlink serve`.

The Lambda side calls the real entry points (ingest.handler, read_api.handler) with the
event API Gateway would send; the serve side sends each request's bytes over a real
loopback socket to a `dhtlink serve` process. Both must give the same JSON errors, and
nothing may be stored.
"""

import base64
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from cloud import ingest, read_api, settings
from cloud.local.files import local_store
from cloud.protocol import token_sha256
from cloud.stores.dynamodb import DynamoDBStore, create_tables
from tests.cloud import hostile

DHTLINK = str(Path(sys.executable).parent / "dhtlink")
# Names only at collection: each test builds its case when it runs, with the clock of then.
ALL = [case.name for case in hostile.cases()]
BOTH = [case.name for case in hostile.cases() if case.where == "both"]


def _event(case: hostile.Case) -> dict:
    try:
        body, encoded = case.body.decode("utf-8"), False
    except UnicodeDecodeError:
        body, encoded = base64.b64encode(case.body).decode(), True
    return {
        "version": "2.0",
        "routeKey": f"{case.method} {case.path}",
        "rawPath": case.path,
        "headers": {k.lower(): v for k, v in case.headers.items()},
        "queryStringParameters": case.query,
        "body": body,
        "isBase64Encoded": encoded,
        "requestContext": {"requestId": "req-1", "http": {"method": case.method, "path": case.path}},
    }


@pytest.fixture(scope="module")
def lambda_env():
    patch = pytest.MonkeyPatch()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "READINGS_TABLE": "readings",
        "DEVICES_TABLE": "devices",
        "READ_TOKEN_SHA256": token_sha256(hostile.READ_TOKEN),
    }.items():
        patch.setenv(name, value)
    with mock_aws():
        client = boto3.client("dynamodb")
        create_tables(client, "readings", "devices")
        store = DynamoDBStore("readings", "devices", client)
        store.add_device(hostile.DEVICE, hostile.SECRET, 1)
        settings.lambda_store.cache_clear()
        settings.lambda_ingest_store.cache_clear()
        yield store
        settings.lambda_store.cache_clear()
        settings.lambda_ingest_store.cache_clear()
    patch.undo()


@pytest.mark.parametrize("name", BOTH)
def test_lambda_handlers_answer_hostile_requests(lambda_env, name):
    case = hostile.case(name)
    entry = ingest.handler if case.method == "POST" else read_api.handler
    response = entry(_event(case), SimpleNamespace(aws_request_id="req-1"))
    hostile.check_answer(case, response["statusCode"], response["headers"]["content-type"], response["body"].encode())
    assert lambda_env.query_readings(hostile.DEVICE)[0] == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(data_dir: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    """`dhtlink serve` on a free loopback port; returns once it answers."""
    port = _free_port()
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(data_dir), "PORT": str(port), "READ_TOKEN": hostile.READ_TOKEN}
    process = subprocess.Popen(
        [DHTLINK, "serve", *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError("dhtlink serve did not start: " + (process.stdout.read() or "")) from None
            time.sleep(0.05)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("hostile-serve")
    local_store(data_dir).add_device(hostile.DEVICE, hostile.SECRET, 1)
    process, port = start_serve(data_dir)
    yield port, data_dir
    process.terminate()
    process.wait(timeout=10)


def exchange(port: int, data: bytes, quiet_s: float = 1.5) -> bytes:
    """Send a request's bytes, then read until the server closes or stays quiet for `quiet_s`
    (a keep-alive connection: a second answer would have come by then)."""
    with socket.create_connection(("127.0.0.1", port), timeout=quiet_s) as conn:
        conn.sendall(data)
        received = b""
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except TimeoutError:
            pass
        return received


def _request_bytes(case: hostile.Case) -> bytes:
    if case.raw is not None:
        return case.raw
    head = f"{case.method} {case.target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in case.headers.items())
    head += f"Content-Length: {len(case.body)}\r\n\r\n"
    return head.encode() + case.body


@pytest.mark.parametrize("name", ALL)
def test_serve_answers_hostile_requests(served, name):
    case = hostile.case(name)
    port, data_dir = served
    answers = hostile.parse_answers(exchange(port, _request_bytes(case)))
    assert len(answers) == 1, f"{case.name}: {len(answers)} answers"
    status, headers, body = answers[0]
    hostile.check_answer(case, status, headers.get("content-type", ""), body)
    assert local_store(data_dir).query_readings(hostile.DEVICE)[0] == []


def test_serve_does_not_process_a_body_cut_short(served):
    """Content-Length promises more than arrives, then the client hangs up: no answer, nothing stored."""
    port, data_dir = served
    body = json.dumps({"device_id": hostile.DEVICE, "readings": [{"seq": 7, "ts": int(time.time()), "t": 1, "h": 1}]})
    signed = hostile._signed("cut short", 200, "", body.encode())
    head = "".join(f"{k}: {v}\r\n" for k, v in signed.headers.items())
    raw = f"POST /data HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(body) + 10}\r\n\r\n".encode() + body.encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(raw)
        conn.shutdown(socket.SHUT_WR)
        assert conn.recv(65536) == b""
    assert local_store(data_dir).query_readings(hostile.DEVICE)[0] == []
