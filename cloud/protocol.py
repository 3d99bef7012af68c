"""Protocol v1.1 request validation (docs/protocol.md): the server rules, in their order.

Each failed rule raises `Reject` carrying the HTTP status and the JSON error; nothing
is stored for a rejected request. Readings that pass the request-level rules but are
physically implausible are returned as per-reading rejections instead.
"""

import base64
import hashlib
import hmac
import itertools
import json
import math
import re
import secrets
from typing import Any, NamedTuple, TypeGuard

from cloud import signing

MAX_BODY = 32 * 1024
MAX_READINGS = 100
MAX_SKEW_S = 300
T_RANGE = (-40.0, 80.0)
H_RANGE = (0.0, 100.0)
DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
SECRET = re.compile(r"[0-9a-f]{64}")  # 32 random bytes, lowercase hex, wherever stored or shown


def new_secret() -> str:
    return secrets.token_hex(32)


# Decimal seconds as the device signed them: no sign, no leading zero (the signature covers
# the header's text, so "01795390000" could never verify against the number it means).
TIMESTAMP = re.compile(r"0|[1-9][0-9]{0,11}")
# Deeper nesting than any valid body needs is refused before json.loads, whose recursion
# would otherwise end in RecursionError on a body nested thousands deep.
MAX_JSON_DEPTH = 16
# A string, or an unterminated one running to the end of the body: the match never fails
# from an opening quote, so the scan stays linear (a failing match retried at each of
# thousands of escaped quotes made it quadratic: seconds of CPU for one 32 KB request).
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
NUMBER_BOUND = 10**9  # past any sensor's range, well inside a float's
READING_KEYS = frozenset(("seq", "ts", "t", "h"))
# dropped = drop_full + drop_clock + drop_poison (spool full, no clock, poison answer);
# unverified counts answers the board could not verify (protocol v1.1).
STATUS_KEYS = (
    "fw",
    "rssi",
    "heap_free",
    "boot",
    "sensor_errors",
    "dropped",
    "drop_full",
    "drop_clock",
    "drop_poison",
    "unverified",
    # Remote settings (docs/protocol.md, v1.1 settings): the version the board runs, and
    # the last version it refused with why.
    "cfg_v",
    "cfg_refused",
    "cfg_error",
    # Over-the-air updates (docs/ota.md): the phase, and the release rolled back or refused.
    "ota",
    "ota_failed",
    "ota_error",
)
TEXT_STATUS_MAX = {
    "fw": 32,
    "cfg_error": 120,
    "ota": 16,
    "ota_failed": 32,
    "ota_error": 120,
}  # status keys holding text, and their longest
# A well-formed secret nobody holds: unknown devices cost the same HMAC as known ones.
_DUMMY_SECRET = hashlib.sha256(b"dhtlink-no-such-device").hexdigest()
UNAUTHORIZED_MESSAGE = "unknown device or bad signature"


class Reject(Exception):
    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, **self.extra}


# NamedTuples, not dataclasses: each dataclass compiles half a dozen generated methods when
# its module is imported, and this module is on the ingest handler's cold start.
class Reading(NamedTuple):
    seq: int
    ts: int
    t: float
    h: float


class Batch(NamedTuple):
    device_id: str
    readings: list[Reading]
    rejected: list[dict[str, Any]]
    status: dict[str, Any] | None


def oversize(size: int) -> Reject:
    return Reject(413, "payload_too_large", f"body is {size} bytes; the limit is {MAX_BODY}")


def header(event: dict[str, Any], name: str) -> str | None:
    headers = event.get("headers") or {}
    value = headers.get(name)
    if value is None:  # API Gateway lower-cases names; a hand-written event may not
        for key, candidate in headers.items():
            if key.lower() == name:
                return candidate
    return value


def raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:
            raise Reject(400, "invalid_body", "body is not valid base64") from None
    return body.encode("utf-8", "surrogatepass")


def check_envelope(event: dict[str, Any], body: bytes) -> tuple[str, int, str]:
    """Size, content type and the auth headers' form. Returns (device_id, timestamp, signature)."""
    if len(body) > MAX_BODY:
        raise oversize(len(body))
    content_type = (header(event, "content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise Reject(415, "unsupported_media_type", "Content-Type must be application/json")
    device_id = header(event, "x-device-id")
    timestamp = header(event, "x-timestamp")
    signature = header(event, "x-signature")
    if not device_id or not timestamp or not signature:
        missing = [
            n for n, v in (("X-Device-Id", device_id), ("X-Timestamp", timestamp), ("X-Signature", signature)) if not v
        ]
        raise Reject(401, "missing_auth", "missing header(s): " + ", ".join(missing))
    if not DEVICE_ID.fullmatch(device_id):
        raise Reject(401, "bad_auth_header", "X-Device-Id must be 1-64 characters of A-Z a-z 0-9 _ -")
    if not TIMESTAMP.fullmatch(timestamp):
        raise Reject(401, "bad_auth_header", "X-Timestamp must be decimal Unix seconds without leading zeros")
    if not signature.startswith(signing.PREFIX) or not re.fullmatch(r"[0-9a-f]{64}", signature[3:]):
        raise Reject(401, "bad_auth_header", "X-Signature must be v1= and 64 lowercase hex characters")
    return device_id, int(timestamp), signature


def check_signature(
    event: dict[str, Any], body: bytes, device_id: str, timestamp: int, signature: str, secret: str | None
) -> None:
    method = (event.get("requestContext") or {}).get("http", {}).get("method", "POST")
    path = event.get("rawPath") or "/data"
    good = signing.verify(secret or _DUMMY_SECRET, device_id, timestamp, method, path, body, signature)
    if secret is None or not good:
        raise Reject(401, "unauthorized", UNAUTHORIZED_MESSAGE)


def check_freshness(timestamp: int, now: float) -> None:
    # Whole seconds on both sides: with a fractional `now`, -300 s failed while +300 s passed.
    server_time = int(now)
    if abs(server_time - timestamp) > MAX_SKEW_S:
        raise Reject(
            401,
            "stale_timestamp",
            f"X-Timestamp is {timestamp - server_time} s off the server clock (limit ±{MAX_SKEW_S} s)",
            server_time=server_time,
        )


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_float(value: int | float) -> float:
    # A JSON integer has no bound and float() of a 400-digit one overflows: clamped first to
    # a value outside every plausible range, so it is rejected like any other such reading.
    if isinstance(value, int):
        return float(max(-NUMBER_BOUND, min(NUMBER_BOUND, value)))
    return value


def _bad(message: str) -> Reject:
    return Reject(400, "invalid_body", message)


def json_depth(body: bytes) -> int:
    """How deep arrays and objects nest in a JSON text (strings skipped); no recursion."""
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKET)
    return max(itertools.accumulate(_BRACKET_STEP[b] for b in brackets), default=0)


def holds_no_readings(body: bytes) -> bool:
    """A batch whose readings list is empty: what `dhtlink provision` sends to probe an endpoint."""
    try:
        document = json.loads(body)
    except ValueError:
        return False
    return isinstance(document, dict) and document.get("readings") == []


def parse_body(body: bytes, device_id: str, now: float, retention_s: int) -> Batch:
    if json_depth(body) > MAX_JSON_DEPTH:
        raise Reject(400, "invalid_json", f"JSON nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Reject(400, "invalid_json", "body is not valid JSON") from None
    if not isinstance(document, dict):
        raise _bad("body must be a JSON object")
    unknown = set(document) - {"device_id", "readings", "status"}
    if unknown:
        raise _bad(f"unknown top-level key(s): {', '.join(sorted(unknown))}")
    if document.get("device_id") != device_id:
        raise Reject(400, "device_mismatch", "body device_id must equal the X-Device-Id header")
    items = document.get("readings")
    if not isinstance(items, list):
        raise _bad("readings must be a list")
    if not 1 <= len(items) <= MAX_READINGS:
        raise Reject(400, "bad_batch_size", f"readings must hold 1 to {MAX_READINGS} items, got {len(items)}")
    status = document.get("status")
    if status is not None and not isinstance(status, dict):
        raise _bad("status must be an object")
    batch = Batch(device_id, [], [], _known_status(status))
    seen: set[int] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _bad(f"readings[{index}] must be an object")
        if set(item) != READING_KEYS:
            extra, missing = set(item) - READING_KEYS, READING_KEYS - set(item)
            what = f"unknown key(s) {sorted(extra)}" if extra else f"missing key(s) {sorted(missing)}"
            raise _bad(f"readings[{index}]: {what}")
        seq, ts, t, h = item["seq"], item["ts"], item["t"], item["h"]
        if not _is_int(seq) or seq < 0 or seq >= 2**53:
            raise _bad(f"readings[{index}].seq must be an integer >= 0")
        if not _is_int(ts) or not 0 <= ts < 2**40:
            raise _bad(f"readings[{index}].ts must be integer Unix seconds")
        if not _is_number(t) or not _is_number(h):
            raise _bad(f"readings[{index}]: t and h must be numbers")
        if seq in seen:
            raise Reject(400, "duplicate_seq", f"seq {seq} appears twice in one batch")
        seen.add(seq)
        t, h = _as_float(t), _as_float(h)
        problem = _implausible(ts, t, h, now, retention_s)
        if problem:
            batch.rejected.append({"seq": seq, "error": problem})
        else:
            batch.readings.append(Reading(seq, ts, t, h))
    return batch


def _implausible(ts: int, t: float, h: float, now: float, retention_s: int) -> str | None:
    if not (math.isfinite(t) and math.isfinite(h)):
        return "not_finite"
    if not T_RANGE[0] <= t <= T_RANGE[1]:
        return "t_out_of_range"
    if not H_RANGE[0] <= h <= H_RANGE[1]:
        return "h_out_of_range"
    if ts > int(now) + MAX_SKEW_S:
        return "ts_in_future"
    if ts < int(now) - retention_s:
        return "ts_too_old"
    return None


def _known_status(status: dict[str, Any] | None) -> dict[str, Any] | None:
    # Unknown keys are ignored, known ones of the wrong type too: status never fails a batch.
    if status is None:
        return None
    kept: dict[str, Any] = {}
    for key in STATUS_KEYS:
        value = status.get(key)
        if key in TEXT_STATUS_MAX:
            if isinstance(value, str) and len(value) <= TEXT_STATUS_MAX[key]:
                kept[key] = value
        elif _is_int(value) and abs(value) < 2**53:
            kept[key] = value
    return kept


def token_sha256(token: str) -> str:
    """What the receiver keeps of a read token: its SHA-256, hex (the token has 256 random bits,
    so a plain hash cannot be reversed by guessing)."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def bearer_ok(event: dict[str, Any], read_token_sha256: str) -> bool:
    supplied = header(event, "authorization") or ""
    scheme, _, token = supplied.partition(" ")
    digest = token_sha256(token).encode()
    return (
        scheme.lower() == "bearer"
        and bool(token)
        and bool(read_token_sha256)
        and hmac.compare_digest(digest, read_token_sha256.encode())
    )
