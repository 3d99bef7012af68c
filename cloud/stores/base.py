"""The store contract every implementation meets (tests/cloud/test_store_contract.py)."""

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Protocol

from cloud.protocol import DEVICE_ID, Reading

# A board cannot move its seq further than this past what the server holds: the spool is
# bounded, so even a year offline at one reading per 2 s stays far below it. A seq beyond
# it (a corrupt counter, a hostile board) is stored and readable but kept out of the
# delivery-health span, which would otherwise count up to 2**53 "missing" readings.
MAX_SEQ_STEP = 10_000_000
MAX_CURSOR_CHARS = 200
MAX_TS = 2**40
MAX_SEQ = 2**53
# A 409's next_seq is one past the highest seq stored below this, so that every seq from
# next_seq up to it is free and fits the 32 bits a board keeps a seq in (docs/protocol.md,
# "Seq conflicts"). Counting boards never get here (136 years at one reading a second);
# a seq at or above it (a corrupt counter, another client) would otherwise send a board
# renumbering past 2**53 - 1, which the protocol refuses.
RENUMBER_CEILING = 2**32


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


@dataclass(frozen=True)
class Delivery:
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

    def remove_device(self, device_id: str) -> None: ...
    def set_secret(self, device_id: str, secret_hex: str) -> None: ...
    def put_readings(self, device_id: str, readings: list[Reading], received_at: int, expires_at: int) -> list[Reading]:
        """Store the readings (at most MAX_READINGS: one request) not already stored, all or
        nothing; returns those newly stored. A seq already stored with the same content is
        a duplicate; with other content it raises SeqConflict and stores nothing."""
        ...

    def store_batch(
        self, device: dict[str, Any], readings: list[Reading], status: dict[str, Any] | None, now: int, expires_at: int
    ) -> list[Reading]:
        """put_readings and record_delivery for one request, the device row's counters
        committed with the readings they count (one transaction wherever the backend can
        hold both); returns the newly stored readings. Raises SeqConflict or StoreBusy only
        when none of the readings was stored."""
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
