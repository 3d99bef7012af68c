"""Builders for API Gateway HTTP API (payload 2.0) events, signed as a device signs."""

import json
import time
from typing import Any

from cloud import signing

SECRET = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
DEVICE = "greenhouse-01"


def clock() -> int:
    """Now in whole seconds, as readings and signed events default to; a module whose tests
    hand the handler a fixed `now` pins this to it, so nothing depends on when tests ran."""
    return int(time.time())


def body_of(readings: list[dict[str, Any]], device_id: str = DEVICE, **extra: Any) -> bytes:
    return json.dumps({"device_id": device_id, "readings": readings, **extra}).encode()


def reading(seq: int, ts: int | None = None, t: float = 21.4, h: float = 45.2) -> dict[str, Any]:
    return {"seq": seq, "ts": clock() - 60 if ts is None else ts, "t": t, "h": h}


def post_event(
    body: bytes,
    device_id: str = DEVICE,
    secret: str = SECRET,
    timestamp: int | None = None,
    path: str = "/data",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    ts = clock() if timestamp is None else timestamp
    signed = {k.lower(): v for k, v in signing.signed_headers(secret, device_id, ts, path, body).items()}
    signed.update({k.lower(): v for k, v in (headers or {}).items()})
    return {
        "version": "2.0",
        "rawPath": path,
        "headers": {k: v for k, v in signed.items() if v is not None},
        "body": body.decode("utf-8", "surrogateescape"),
        "isBase64Encoded": False,
        "requestContext": {"http": {"method": "POST", "path": path}},
    }


def get_event(path: str, token: str | None = "read-token", **params: str) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token is not None else {}
    return {
        "version": "2.0",
        "rawPath": path,
        "headers": headers,
        "queryStringParameters": params or None,
        "requestContext": {"http": {"method": "GET", "path": path}},
    }
