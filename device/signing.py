# Protocol v1 request signing and v1.1 answer verification: HMAC-SHA256 (RFC 2104)
# over hashlib.sha256, because MicroPython on the ESP32 has no hmac module.
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


def ack_string(request_signature, status, body):
    """What the receiver signs in an answer: it binds the status and the body to the
    request it answers (whose signature covers device, time, method, path and body)."""
    return "ack1\n%s\n%03d\n%s" % (request_signature, status, hexdigest(hashlib.sha256(body).digest()))


def sign_answer(secret_hex, request_signature, status, body):
    key = binascii.unhexlify(secret_hex)
    return "v1=" + hexdigest(hmac_sha256(key, ack_string(request_signature, status, body).encode()))


def equal(a, b):
    """a == b for bytes, in time that depends on the length only, never on where they
    differ: an answer's forger must not learn the signature a byte at a time."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


def verify_answer(secret_hex, request_signature, status, body, signature):
    """True when signature (the answer's X-Signature, bytes or str; None when absent)
    signs this status and body as the answer to the request signed request_signature."""
    if not signature:
        return False
    if isinstance(signature, str):
        signature = signature.encode()
    return equal(sign_answer(secret_hex, request_signature, status, body).encode(), signature)
