import json

import pytest

from cloud import signing
from tests.conftest import VECTORS_FILE

_ALL = json.loads(VECTORS_FILE.read_text())
VECTORS = _ALL["vectors"]
ACK_VECTORS = _ALL["ack_vectors"]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["device_id"])
def test_vectors(vector):
    args = (
        vector["device_id"],
        vector["timestamp"],
        vector["method"],
        vector["path"],
        vector["body"].encode(),
    )
    assert signing.string_to_sign(*args) == vector["string_to_sign"]
    assert signing.sign(vector["secret_hex"], *args) == vector["signature"]
    assert signing.verify(vector["secret_hex"], *args, vector["signature"])


def test_verify_rejects_any_change():
    vector = VECTORS[0]
    args = [
        vector["device_id"],
        vector["timestamp"],
        vector["method"],
        vector["path"],
        vector["body"].encode(),
    ]
    good = vector["signature"]
    assert not signing.verify(vector["secret_hex"], *args, good[:-1] + ("0" if good[-1] != "0" else "1"))
    assert not signing.verify(vector["secret_hex"], *args, "")
    assert not signing.verify(vector["secret_hex"], *args, "v1=\u00e9")
    tampered = list(args)
    tampered[4] = args[4] + b" "
    assert not signing.verify(vector["secret_hex"], *tampered, good)
    other_path = list(args)
    other_path[3] = "/prod/data"
    assert not signing.verify(vector["secret_hex"], *other_path, good)


@pytest.mark.parametrize("vector", ACK_VECTORS, ids=lambda v: str(v["status"]))
def test_answer_vectors(vector):
    args = (vector["request_signature"], vector["status"], vector["body"].encode())
    assert signing.answer_string_to_sign(*args) == vector["string_to_sign"]
    assert signing.sign_answer(vector["secret_hex"], *args) == vector["signature"]
    assert signing.verify_answer(vector["secret_hex"], *args, vector["signature"])


def test_an_answer_verifies_only_for_its_own_request_status_and_body():
    vector = ACK_VECTORS[0]
    secret, request, status, body = (
        vector["secret_hex"],
        vector["request_signature"],
        vector["status"],
        vector["body"].encode(),
    )
    good = vector["signature"]
    other_request = request[:-1] + ("0" if request[-1] != "0" else "1")
    assert not signing.verify_answer(secret, other_request, status, body, good)  # replayed to another request
    assert not signing.verify_answer(secret, request, 201, body, good)
    assert not signing.verify_answer(secret, request, status, body + b" ", good)
    assert not signing.verify_answer("00" * 32, request, status, body, good)
    assert not signing.verify_answer(secret, request, status, body, None)  # unsigned (a captive portal)
