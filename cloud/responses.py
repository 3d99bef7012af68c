"""API Gateway HTTP API (payload 2.0) responses."""

import json
from typing import Any


def respond(status: int, body: dict[str, Any] | list[Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        # Sent as is: a signed answer's X-Signature covers exactly these bytes.
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def error(status: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    return respond(status, {"error": code, "message": message, **extra})
