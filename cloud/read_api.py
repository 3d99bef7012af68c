"""GET /data/latest, GET /data, GET /data/csv, GET /data/series, GET /devices, GET /alerts:
bearer-token reads, never a secret."""

import base64
import gzip
import os
import re
import time
from typing import Any

from cloud import protocol, series
from cloud.observability import lambda_handler, log
from cloud.responses import error, respond
from cloud.settings import lambda_store
from cloud.stores.base import (
    DEVICE_SORTS,
    DEVICE_STATUSES,
    MAX_TS,
    BadCursor,
    Store,
    StoreBusy,
    public_device,
)

MAX_LIMIT = 1000
DEVICES_PAGE = 100  # the most a page of GET /devices holds, and its default
# One CSV answer stays under Lambda's 6 MB response limit even uncompressed (~50 bytes a row):
# a month at one reading every 20 s. A longer range is asked for in parts.
CSV_MAX_ROWS = 100_000
CSV_HEADER = "time_utc,unix_s,seq,temperature_c,humidity_pct\n"
RETRY_AFTER_S = 5


class BadQuery(ValueError):
    pass


_WHOLE = re.compile(r"[0-9]{1,16}")  # ASCII digits only: str.isdigit() also takes "²"
KNOWN_PARAMS = {
    "/data/latest": {"device_id"},
    "/data": {"device_id", "from", "to", "limit", "cursor"},
    "/devices": {"limit", "cursor", "sort", "status", "device_id"},
    "/data/csv": {"device_id", "from", "to"},
    "/data/series": {"device_id", "from", "to", "points"},
    "/alerts": {"limit", "device_id"},
}


def _int_param(params: dict[str, str], name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not _WHOLE.fullmatch(raw) or not lo <= int(raw) <= hi:
        raise BadQuery(f"{name} must be a whole number from {lo} to {hi}")
    return int(raw)


def _check_params(params: dict[str, str], route: str) -> None:
    unknown = sorted(set(params) - KNOWN_PARAMS[route])
    if unknown:
        takes = ", ".join(sorted(KNOWN_PARAMS[route]))
        raise BadQuery(f"unknown query parameter(s) {', '.join(unknown)[:200]}; {route} takes {takes}")


def _device_param(params: dict[str, str]) -> str:
    device_id = params.get("device_id")
    if not device_id or not protocol.DEVICE_ID.fullmatch(device_id):
        raise BadQuery("device_id is required: 1-64 characters of A-Z a-z 0-9 _ -")
    return device_id


def _choice(params: dict[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = params.get(name) or choices[0]
    if value not in choices:
        raise BadQuery(f"{name} must be one of {', '.join(choices)}, got {value[:40]!r}")
    return value


def _compact_utc(ts: int) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))


def _csv(store: Store, params: dict[str, str], accepts_gzip: bool) -> dict[str, Any]:
    """A device's readings in [from, to], oldest first, as one CSV answer (UTC times)."""
    device_id = _device_param(params)
    to_ts = _int_param(params, "to", int(time.time()), 0, MAX_TS - 1)
    from_ts = _int_param(params, "from", 0, 0, MAX_TS - 1)
    assert from_ts is not None and to_ts is not None
    if from_ts > to_ts:
        raise BadQuery(f"from ({from_ts}) is after to ({to_ts})")
    pages: list[list[dict[str, Any]]] = []
    cursor, rows = None, 0
    while True:
        items, cursor = store.query_readings(device_id, from_ts, to_ts, MAX_LIMIT, cursor)
        pages.append(items)
        rows += len(items)
        if rows > CSV_MAX_ROWS:
            return error(
                413,
                "too_many_rows",
                f"that range holds more than {CSV_MAX_ROWS} readings: download it in parts (a shorter from/to)",
            )
        if cursor is None:
            break
    lines = [CSV_HEADER]
    for page in reversed(pages):
        for r in reversed(page):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["ts"]))
            lines.append(f"{stamp},{r['ts']},{r['seq']},{r['t']},{r['h']}\n")
    raw = "".join(lines).encode()
    name = f"{device_id}_{_compact_utc(from_ts)}_{_compact_utc(to_ts)}.csv"
    headers = {
        "content-type": "text/csv; charset=utf-8",
        "content-disposition": f'attachment; filename="{name}"',
        "x-rows": str(rows),
    }
    if accepts_gzip:
        headers["content-encoding"] = "gzip"
        return {
            "statusCode": 200,
            "headers": headers,
            "body": base64.b64encode(gzip.compress(raw, 6, mtime=0)).decode(),
            "isBase64Encoded": True,
        }
    return {"statusCode": 200, "headers": headers, "body": raw.decode(), "isBase64Encoded": False}


def handle(event: dict[str, Any], store: Store, read_token_sha256: str) -> dict[str, Any]:
    started = time.perf_counter()
    method = (event.get("requestContext") or {}).get("http", {}).get("method", "GET")
    path = event.get("rawPath") or ""
    route = f"{method} {path}"
    if not protocol.bearer_ok(event, read_token_sha256):
        log("WARNING", "read refused", route=route, status=401)
        return error(401, "unauthorized", "send Authorization: Bearer <read token>")
    params = event.get("queryStringParameters") or {}
    try:
        if path.endswith("/data/latest"):
            _check_params(params, "/data/latest")
            device_id = _device_param(params)
            latest = store.latest_reading(device_id)
            if latest is None:
                return error(404, "not_found", f"no readings for device {device_id}")
            result = respond(200, {"device_id": device_id, **latest})
        elif path.endswith("/data/series"):
            _check_params(params, "/data/series")
            try:
                result = respond(200, series.from_params(store, params, time.time()))
            except ValueError as bad:
                raise BadQuery(str(bad)) from None
        elif path.endswith("/data/csv"):
            _check_params(params, "/data/csv")
            request_headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
            result = _csv(store, params, "gzip" in request_headers.get("accept-encoding", ""))
        elif path.endswith("/data"):
            _check_params(params, "/data")
            device_id = _device_param(params)
            from_ts = _int_param(params, "from", None, 0, MAX_TS - 1)
            to_ts = _int_param(params, "to", None, 0, MAX_TS - 1)
            if from_ts is not None and to_ts is not None and from_ts > to_ts:
                raise BadQuery(f"from ({from_ts}) is after to ({to_ts})")
            limit = _int_param(params, "limit", 100, 1, MAX_LIMIT)
            assert limit is not None
            items, cursor = store.query_readings(device_id, from_ts, to_ts, limit, params.get("cursor") or None)
            result = respond(200, {"device_id": device_id, "items": items, "next_cursor": cursor})
        elif path.endswith("/alerts"):
            from cloud.alerts.admin import overview

            _check_params(params, "/alerts")
            limit = _int_param(params, "limit", 100, 1, MAX_LIMIT)
            device = _device_param(params) if params.get("device_id") else None
            result = respond(200, overview(store, int(time.time()), limit or 100, device))
        elif path.endswith("/devices"):
            _check_params(params, "/devices")
            if params.get("device_id"):
                if set(params) != {"device_id"}:
                    raise BadQuery("device_id asks for one device: send it alone (no limit, cursor, sort or status)")
                row = store.find_device(_device_param(params))
                found = [public_device(row)] if row else []
                return _logged(route, started, respond(200, {"devices": found, "next_cursor": None}))
            limit = _int_param(params, "limit", DEVICES_PAGE, 1, DEVICES_PAGE)
            assert limit is not None
            sort, status = _choice(params, "sort", DEVICE_SORTS), _choice(params, "status", DEVICE_STATUSES)
            rows, cursor = store.page_devices(limit, params.get("cursor") or None, sort=sort, status=status)
            now = int(time.time())
            result = respond(200, {"devices": [public_device(row, now) for row in rows], "next_cursor": cursor})
        else:
            return error(404, "not_found", f"no route {route}")
    except (BadQuery, BadCursor) as bad:
        log("WARNING", "read refused", route=route, status=400, error="bad_query")
        return error(400, "bad_query", str(bad))
    except StoreBusy as busy:
        log("WARNING", "store busy", route=route, status=503, cause=str(busy))
        result = error(503, "store_busy", "the store is busy: try again shortly")
        result["headers"]["Retry-After"] = str(RETRY_AFTER_S)
        return result
    return _logged(route, started, result)


def _logged(route: str, started: float, result: dict[str, Any]) -> dict[str, Any]:
    log(
        "INFO",
        "read",
        route=route,
        status=result["statusCode"],
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return result


@lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings, store = lambda_store()
    return handle(event, store, settings.read_token_sha256)


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    lambda_store()  # in the init phase, which runs at full CPU, not on the first request
