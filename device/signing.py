# Protocol v1 request signing: HMAC-SHA256 (RFC 2104) over hashlib.sha256,
# because MicroPython on the ESP32 has no hmac module.
import hashlib
import binascii

_BLOCK = 64


def hmac_sha256(key, msg):
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + b"\x00" * (_BLOCK - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def hexdigest(data):
    return binascii.hexlify(data).decode()


def string_to_sign(device_id, timestamp, method, path, body):
    return "v1\n%s\n%d\n%s\n%s\n%s" % (
        device_id,
        timestamp,
        method,
        path,
        hexdigest(hashlib.sha256(body).digest()),
    )


def sign(secret_hex, device_id, timestamp, method, path, body):
    key = binascii.unhexlify(secret_hex)
    msg = string_to_sign(device_id, timestamp, method, path, body).encode()
    return "v1=" + hexdigest(hmac_sha256(key, msg))
