import json

import pytest

from cloud import signing
from tests.conftest import VECTORS_FILE

VECTORS = json.loads(VECTORS_FILE.read_text())["vectors"]


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
