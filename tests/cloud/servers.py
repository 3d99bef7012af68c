"""DynamoDB-compatible servers on 127.0.0.1 for the tests: moto_server (what the bench and
`dhtlink serve --dynamodb-endpoint` use here) and dynalite (an independent emulator that
enforces DynamoDB's request limits, pinned in tests/emulators/package-lock.json)."""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import boto3
import pytest

from host_tools.dynamodb_server import LOCAL_SESSION, MotoServer

DYNALITE = Path(__file__).resolve().parents[1] / "emulators" / "node_modules" / ".bin" / "dynalite"
# Read timeout of the clients of tests that judge what moto_server stores, not how fast: one
# request at a time in Python, it took 0.5-1 s for a 100-item transaction at load average 20
# (DynamoDB: milliseconds). Past the receiver's 3 s, botocore's retry meets a transaction that
# landed (moto ignores ClientRequestToken) or both attempts time out, and a test fails on the
# emulator's speed. tests/cloud/test_throttling_http.py keeps the receiver's own timeouts.
PATIENT_S = 60


@pytest.fixture(scope="module")
def moto_server():
    with MotoServer() as server:
        yield server


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def dynalite():
    """The URL of a dynalite with in-memory tables, for this module."""
    if not DYNALITE.exists() or not shutil.which("node"):
        message = "dynalite is not installed: `make emulators` (npm ci in tests/emulators)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    port = _free_port()
    process = subprocess.Popen(
        [str(DYNALITE), "--host", "127.0.0.1", "--port", str(port), "--createTableMs", "0", "--deleteTableMs", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "dynalite did not start"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def raw_client(url):
    """A client with botocore's defaults, for calls the store never makes (emulator facts)."""
    return boto3.client("dynamodb", endpoint_url=url, **LOCAL_SESSION)
