import json

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
