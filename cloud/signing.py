"""Request and answer signing, protocol v1.1 (docs/protocol.md).

string_to_sign = "v1\\n" + device_id + "\\n" + timestamp + "\\n" + METHOD + "\\n" + path + "\\n"
                 + hex(sha256(body))
signature      = "v1=" + hex(HMAC-SHA256(bytes.fromhex(secret), string_to_sign))
ack_string     = "ack1\\n" + the request's X-Signature + "\\n" + 3-digit status + "\\n"
                 + hex(sha256(response body))
answer's X-Signature = "v1=" + hex(HMAC-SHA256(bytes.fromhex(secret), ack_string))
"""

import hashlib
import hmac

SCHEME = "v1"
PREFIX = SCHEME + "="


def string_to_sign(device_id: str, timestamp: int | str, method: str, path: str, body: bytes) -> str:
    body_hash = hashlib.sha256(body).hexdigest()
    return "\n".join((SCHEME, device_id, str(timestamp), method.upper(), path, body_hash))


def sign(secret_hex: str, device_id: str, timestamp: int | str, method: str, path: str, body: bytes) -> str:
    message = string_to_sign(device_id, timestamp, method, path, body).encode()
    return PREFIX + hmac.new(bytes.fromhex(secret_hex), message, hashlib.sha256).hexdigest()


def verify(
    secret_hex: str, device_id: str, timestamp: int | str, method: str, path: str, body: bytes, signature: str
) -> bool:
    """Constant-time check of a received X-Signature header."""
    expected = sign(secret_hex, device_id, timestamp, method, path, body)
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def signed_headers(secret_hex: str, device_id: str, timestamp: int, path: str, body: bytes) -> dict[str, str]:
    """The headers a device sends with a POST of `body` to `path`."""
    return {
        "Content-Type": "application/json",
        "X-Device-Id": device_id,
        "X-Timestamp": str(timestamp),
        "X-Signature": sign(secret_hex, device_id, timestamp, "POST", path, body),
    }


def answer_string_to_sign(request_signature: str, status: int, body: bytes) -> str:
    return "\n".join(("ack1", request_signature, f"{status:03d}", hashlib.sha256(body).hexdigest()))


def sign_answer(secret_hex: str, request_signature: str, status: int, body: bytes) -> str:
    """The X-Signature of an answer: binds status and body to the request it answers."""
    message = answer_string_to_sign(request_signature, status, body).encode()
    return PREFIX + hmac.new(bytes.fromhex(secret_hex), message, hashlib.sha256).hexdigest()


def verify_answer(secret_hex: str, request_signature: str, status: int, body: bytes, signature: str | None) -> bool:
    """Constant-time check of an answer's X-Signature (what a device or a host tool does)."""
    expected = sign_answer(secret_hex, request_signature, status, body)
    return hmac.compare_digest(expected.encode(), (signature or "").encode("utf-8", "replace"))
