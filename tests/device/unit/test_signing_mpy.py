import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import VECTORS_FILE

VECTORS = json.loads(VECTORS_FILE.read_text())["vectors"]

# RFC 4231 HMAC-SHA256 test cases 1-4, 6, 7 (case 5 truncates the output).
RFC4231 = [
    ("0b" * 20, b"Hi There".hex(), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (
        b"Jefe".hex(),
        b"what do ya want for nothing?".hex(),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    ("aa" * 20, "dd" * 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    (
        "0102030405060708090a0b0c0d0e0f10111213141516171819",
        "cd" * 50,
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ),
    (
        "aa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First".hex(),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        "aa" * 131,
        b"This is a test using a larger than block-size key and a larger than block-size data. The key "
        b"needs to be hashed before being used by the HMAC algorithm.".hex(),
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
]


def test_rfc4231_under_micropython(mpy):
    cases = json.dumps(RFC4231)
    out = mpy.json(f"""
        import json, binascii, signing
        out = []
        for key, msg, _ in json.loads({cases!r}):
            out.append(signing.hexdigest(signing.hmac_sha256(binascii.unhexlify(key), binascii.unhexlify(msg))))
        print(json.dumps(out))
    """)
    assert out == [expected for _, _, expected in RFC4231]


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["device_id"])
def test_protocol_vectors_under_micropython(mpy, vector):
    out = mpy.json(f"""
        import json, signing
        v = json.loads({json.dumps(vector)!r})
        sts = signing.string_to_sign(v["device_id"], v["timestamp"], v["method"], v["path"], v["body"].encode())
        sig = signing.sign(v["secret_hex"], v["device_id"], v["timestamp"], v["method"], v["path"],
                           v["body"].encode())
        print(json.dumps([sts, sig]))
    """)
    assert out == [vector["string_to_sign"], vector["signature"]]


ACK_VECTORS = json.loads(VECTORS_FILE.read_text())["ack_vectors"]


@pytest.mark.parametrize("vector", ACK_VECTORS, ids=lambda v: str(v["status"]))
def test_ack_vectors_under_micropython(mpy, vector):
    out = mpy.json(f"""
        import json, signing
        v = json.loads({json.dumps(vector)!r})
        body = v["body"].encode()
        sts = signing.ack_string(v["request_signature"], v["status"], body)
        sig = signing.sign_answer(v["secret_hex"], v["request_signature"], v["status"], body)
        ok = signing.verify_answer(v["secret_hex"], v["request_signature"], v["status"], body, v["signature"].encode())
        print(json.dumps([sts, sig, ok]))
    """)
    assert out == [vector["string_to_sign"], vector["signature"], True]


def test_an_answer_verifies_only_for_its_own_request_status_body_and_secret(mpy):
    v = ACK_VECTORS[0]
    other_request = "v1=" + "0" * 64
    out = mpy.json(f"""
        import json, signing
        v = json.loads({json.dumps(v)!r})
        secret, req, st, sig = v["secret_hex"], v["request_signature"], v["status"], v["signature"]
        body = v["body"].encode()
        flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
        cases = {{
            "as sent": (secret, req, st, body, sig),
            "bytes header": (secret, req, st, body, sig.encode()),
            "replayed for another request": (secret, {other_request!r}, st, body, sig),
            "other status": (secret, req, 201, body, sig),
            "body changed": (secret, req, st, body.replace(b"1795390001", b"1795393601"), sig),
            "other secret": ("ff" * 32, req, st, body, sig),
            "no signature": (secret, req, st, body, None),
            "empty signature": (secret, req, st, body, b""),
            "last digit changed": (secret, req, st, body, flipped),
            "truncated": (secret, req, st, body, sig[:-2]),
            "upper case": (secret, req, st, body, "v1=" + sig[3:].upper()),
            "request signature itself": (secret, req, st, body, req),
        }}
        print(json.dumps({{k: signing.verify_answer(*a) for k, a in cases.items()}}))
    """)
    assert out.pop("as sent") is True and out.pop("bytes header") is True
    assert out == dict.fromkeys(out, False)


def test_equal_compares_every_byte(mpy):
    out = mpy.json("""
        import json, signing
        a = b"v1=" + b"a" * 64
        print(json.dumps([signing.equal(a, a), signing.equal(a, a[:-1] + b"b"), signing.equal(a, b"b" + a[1:]),
                          signing.equal(a, a[:-1]), signing.equal(b"", b"")]))
    """)
    assert out == [True, False, False, False, True]


def test_the_verification_benchmark_runs_and_verifies():
    # bench/device_verify.py prints the figures docs/performance.md quotes: it must not rot.
    bench = Path(__file__).resolve().parents[3] / "bench" / "device_verify.py"
    done = subprocess.run(
        [sys.executable, str(bench), "--n", "50", "--json"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["rows"]
    assert [r["body_bytes"] > 0 and 0 < r["heap_bytes"] < 8192 for r in rows] == [True, True]
