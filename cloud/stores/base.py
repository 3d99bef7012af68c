"""The store contract every implementation meets (tests/cloud/test_store_contract.py)."""

import base64
import binascii
import json
import zlib
from collections.abc import Iterator
from typing import Any, NamedTuple, Protocol

from cloud.protocol import DEVICE_ID, Reading

# A board cannot move its seq further than this past what the server holds: the spool is
# bounded, so even a year offline at one reading per 2 s stays far below it. A seq beyond
# it (a corrupt counter, a hostile board) is stored and readable but kept out of the
# delivery-health span, which would otherwise count up to 2**53 "missing" readings.
MAX_SEQ_STEP = 10_000_000
MAX_CURSOR_CHARS = 200
MAX_TS = 2**40
MAX_SEQ = 2**53


class BadCursor(ValueError):
    """A cursor this API did not hand out; the message says what to do."""

    def __init__(self) -> None:
        super().__init__("cursor is not one this API returned; send the next_cursor of the previous page unchanged")


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()


def _cursor_json(cursor: str) -> Any:
    if len(cursor) > MAX_CURSOR_CHARS:
        raise BadCursor()
    try:
        return json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        raise BadCursor() from None


def decode_cursor(cursor: str) -> Any:
    """The JSON value a store encoded into a cursor (encode_cursor); BadCursor if it is not one."""
    return _cursor_json(cursor)


def _whole(value: Any, limit: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < limit


def decode_reading_cursor(cursor: str) -> tuple[int, int]:
    """(ts, seq) of the last reading of the previous page."""
    value = _cursor_json(cursor)
    if not (isinstance(value, list) and len(value) == 2 and _whole(value[0], MAX_TS) and _whole(value[1], MAX_SEQ)):
        raise BadCursor()
    return value[0], value[1]


def decode_device_cursor(cursor: str) -> str:
    """The device id the previous page of GET /devices ended with."""
    value = _cursor_json(cursor)
    after = value.get("after") if isinstance(value, dict) else None
    if not isinstance(after, str) or not DEVICE_ID.fullmatch(after):
        raise BadCursor()
    return after


# The registry's listing and the scheduled alert job are split over this many parts of the
# fleet (cloud/stores/dynamodb.py's index partitions; one scheduled run each, in parallel).
DEVICE_SHARDS = 16
SHARDS = tuple(f"{n:02d}" for n in range(DEVICE_SHARDS))


def device_shard(device_id: str) -> str:
    """The part of the fleet a device belongs to: its id's CRC-32, evenly over DEVICE_SHARDS."""
    return SHARDS[zlib.crc32(device_id.encode()) % DEVICE_SHARDS]


# GET /devices' server-side order and filter (the fleet page; docs/api.md). Every store
# implements page_devices(limit, cursor=None, sort="id", status="all") with these meanings.
DEVICE_SORTS = ("id", "last_seen", "-last_seen")  # last_seen: oldest first; a never-seen device counts as the oldest
DEVICE_STATUSES = ("all", "stale", "problems")
# What a board sends at when its desired settings do not say (device/config.py's DEFAULTS):
# a reading a minute, sent when 20 are spooled or after 1,200 s, whichever comes first.
DEFAULT_INTERVAL_S, DEFAULT_BATCH_SIZE, DEFAULT_MAX_BATCH_DELAY_S = 60, 20, 1200
STALE_INTERVALS = 3


def send_interval_s(row: dict[str, Any]) -> int:
    """How often the device should be heard from: its (desired) reading interval times its
    batch size, capped by its longest batch delay."""
    desired = row.get("desired") or {}
    interval = desired.get("interval_s") or DEFAULT_INTERVAL_S
    batch = desired.get("batch_size") or DEFAULT_BATCH_SIZE
    delay = desired.get("max_batch_delay_s")
    delay = DEFAULT_MAX_BATCH_DELAY_S if delay is None else delay
    return max(interval, min(interval * batch, delay or interval))


def is_stale(row: dict[str, Any], now: int) -> bool:
    """Never seen, or not heard from for more than 3 send intervals."""
    last_seen = row.get("last_seen")
    return last_seen is None or now - last_seen > STALE_INTERVALS * send_interval_s(row)


def has_problems(row: dict[str, Any], now: int) -> bool:
    """Stale, or its last report shows errors: failed sensor reads, dropped readings,
    refused settings or a failed update, or readings missing from its delivery span."""
    if is_stale(row, now):
        return True
    status = row.get("last_status") or {}
    if status.get("sensor_errors") or status.get("dropped") or status.get("cfg_refused") or status.get("ota_failed"):
        return True
    first, last = row.get("first_seq"), row.get("max_seq")
    return first is not None and last is not None and last - first + 1 > (row.get("received") or 0)


def matches_status(row: dict[str, Any], status: str, now: int) -> bool:
    return status == "all" or (is_stale(row, now) if status == "stale" else has_problems(row, now))


def check_device_view(sort: str, status: str) -> None:
    if sort not in DEVICE_SORTS:
        raise ValueError(f"sort must be one of {', '.join(DEVICE_SORTS)}, got {sort!r}")
    if status not in DEVICE_STATUSES:
        raise ValueError(f"status must be one of {', '.join(DEVICE_STATUSES)}, got {status!r}")


def health_span(device: dict[str, Any], seqs: list[int]) -> list[int]:
    """The seqs of one delivery that extend the delivery-health span (see MAX_SEQ_STEP)."""
    if not seqs:
        return []
    low, high = device.get("first_seq"), device.get("max_seq")
    if low is None or high is None:
        low = high = min(seqs)
    return [seq for seq in seqs if low - MAX_SEQ_STEP <= seq <= high + MAX_SEQ_STEP]


class DeviceExists(ValueError):
    pass


class NoSuchDevice(ValueError):
    pass


MAX_CONFLICTS = 10  # seqs named in a 409: enough to debug, bounded for a small board's buffer


class SeqConflict(Exception):
    """Some seqs of the batch are already stored with other content; nothing was stored."""

    def __init__(self, seqs: list[int], next_seq: int) -> None:
        super().__init__(f"{len(seqs)} seq(s) already hold other readings; next_seq {next_seq}")
        self.count = len(seqs)
        self.seqs = sorted(seqs)[:MAX_CONFLICTS]
        self.next_seq = next_seq


class StoreBusy(Exception):
    """The store throttled or stayed locked through the store's own retries; nothing was
    stored by the failed call, and the same request may be sent again later."""


def same_content(stored: Reading, sent: Reading) -> bool:
    """A re-send or another reading under the same seq? ts exactly, t and h at the 0.1
    resolution of the sensors, so a float's round trip through a store is no conflict."""
    return (
        stored.ts == sent.ts
        and round(stored.t * 10) == round(sent.t * 10)
        and round(stored.h * 10) == round(sent.h * 10)
    )


class Delivery(NamedTuple):  # not a dataclass: on the ingest handler's cold start (cloud/protocol.py)
    """What one accepted request did, for the device row."""

    now: int
    status: dict[str, Any] | None
    stored: list[Reading]


def public_device(row: dict[str, Any]) -> dict[str, Any]:
    """A registry row as the read API shows it: no secret; delivery health derived."""
    first, last, received = row.get("first_seq"), row.get("max_seq"), row.get("received", 0)
    span = 0 if first is None or last is None else last - first + 1
    return {
        "device_id": row["device_id"],
        "created_at": row.get("created_at"),
        "last_seen": row.get("last_seen"),
        "last_reading": row.get("last_reading"),
        "last_status": row.get("last_status"),
        "health": {
            "first_seq": first,
            "max_seq": last,
            "received": received,
            # seqs inside the span the server never stored: lost or still on the device
            "missing": max(0, span - received),
        },
        "settings": settings_shadow(row),
    }


def merged_settings(desired: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """desired with changes applied; a change to None removes the key (the board then runs
    its config.json's value)."""
    out = {**desired, **changes}
    return {key: value for key, value in out.items() if value is not None}


def settings_shadow(row: dict[str, Any]) -> dict[str, Any]:
    """Desired settings (set with `dhtlink devices set`) beside what the board reported
    running, like a device shadow; in_sync once the board runs the desired version."""
    status = row.get("last_status") or {}
    desired_version = row.get("desired_version") or 0
    reported = status.get("cfg_v")
    out: dict[str, Any] = {
        "desired": row.get("desired") or {},
        "desired_version": desired_version,
        "reported_version": reported,
        "in_sync": desired_version == (reported or 0),
    }
    if status.get("cfg_refused"):
        out["refused_version"] = status["cfg_refused"]
        out["refused_because"] = status.get("cfg_error")
    return out


def reading_item(reading: Reading) -> dict[str, Any]:
    return {"seq": reading.seq, "ts": reading.ts, "t": reading.t, "h": reading.h}


class Store(Protocol):
    def add_device(self, device_id: str, secret_hex: str, created_at: int) -> None: ...
    def get_device(self, device_id: str) -> dict[str, Any] | None: ...
    def list_devices(self) -> list[dict[str, Any]]: ...
    def page_devices(self, limit: int, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Up to `limit` registry rows in device-id order after `cursor`; the next page's cursor or None."""
        ...

    def iter_devices(self, shard: str | None = None) -> Iterator[dict[str, Any]]:
        """Every registry row (of one shard: device_shard) in device-id order, read a page
        at a time (bounded memory)."""
        ...

    def iter_alert_states(self, shard: str | None = None) -> Iterator[dict[str, Any]]:
        """Every alert state (of one shard's devices) ordered by (device_id, rule_id), read
        a page at a time."""
        ...

    def remove_device(self, device_id: str) -> None: ...
    def set_secret(self, device_id: str, secret_hex: str) -> None: ...
    def put_readings(self, device_id: str, readings: list[Reading], received_at: int, expires_at: int) -> list[Reading]:
        """Store the readings (at most MAX_READINGS: one request) not already stored, all or
        nothing; returns those newly stored. A seq already stored with the same content is
        a duplicate; with other content it raises SeqConflict and stores nothing."""
        ...

    def record_delivery(self, device: dict[str, Any], delivery: Delivery) -> None: ...
    def update_rollups(self, device_id: str, readings: list[Reading], expires_at: int) -> None:
        """Ingest's hook after a batch is stored: summarise now, or leave it to the stream function."""
        ...

    def summarise(self, device_id: str, timestamps: list[int], expires_at: int) -> None:
        """Recompute the hour and day summaries (cloud/rollups.py) these reading times fall in."""
        ...

    def query_rollups(self, device_id: str, level: str, from_ts: int, to_ts: int) -> list[tuple[int, list[Any]]]: ...
    def latest_reading(self, device_id: str) -> dict[str, Any] | None: ...
    def query_readings(
        self,
        device_id: str,
        from_ts: int | None = None,
        to_ts: int | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]: ...

    def set_desired(self, device_id: str, changes: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Merge changes into the device's desired settings (None removes a key) and give them the next version;
        returns (version, desired). Raises NoSuchDevice. Rows carry `desired` (a dict or
        None) and `desired_version` (0 when never set)."""
        ...

    def set_ota_target(self, device_id: str, target: dict[str, Any] | None) -> None:
        """The release a device should run, {"v", "sha", "size"} (docs/ota.md), or None to
        stop offering one. Raises NoSuchDevice. Rows carry `ota_target` (None when unset)."""
        ...
