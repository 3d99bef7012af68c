"""The store contract every implementation meets (tests/cloud/test_store_contract.py)."""

import base64
import binascii
import json
import time
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
    """The device id the previous page of GET /devices (sort=id) ended with."""
    value = _cursor_json(cursor)
    after = value.get("after") if isinstance(value, dict) else None
    if not isinstance(after, str) or not DEVICE_ID.fullmatch(after) or value.get("sort", "id") != "id":
        raise BadCursor()
    return after


def encode_seen_cursor(sort: str, row: dict[str, Any]) -> str:
    return encode_cursor({"sort": sort, "after": [seen_key(row), row["device_id"]]})


def decode_seen_cursor(cursor: str, sort: str) -> tuple[int, str]:
    """(seen_key, device id) of the last row of the previous page sorted by `sort`
    (last_seen or -last_seen); a cursor of another sort is refused, not misread."""
    value = _cursor_json(cursor)
    after = value.get("after") if isinstance(value, dict) else None
    if (
        value.get("sort") != sort
        or not isinstance(after, list)
        or len(after) != 2
        or not (after[0] == -1 or _whole(after[0], MAX_TS))
        or not isinstance(after[1], str)
        or not DEVICE_ID.fullmatch(after[1])
    ):
        raise BadCursor()
    return after[0], after[1]


# -- the fleet page: sorts, status filters, recent counters ---------------------------
# GET /devices?sort=...&status=... and Store.page_devices. The definitions below are the
# contract every store implements (tests/cloud/test_store_contract.py):
#   sort id          ascending device id
#   sort last_seen   ascending seen_key, ties in ascending device id; a never-seen device
#                    has seen_key -1, so it counts as the oldest
#   sort -last_seen  the exact reverse (descending seen_key, ties in descending device id)
#   status all       every device
#   status stale     is_stale(row, now): never seen, or last_seen + stale_after_s(row) < now
#   status problems  is_problem(row, now): stale, or errors_at within RECENT_WINDOW_S of now
DEVICE_SORTS = ("id", "last_seen", "-last_seen")
DEVICE_STATUSES = ("all", "stale", "problems")
RECENT_WINDOW_S = 86400  # "recent" counters and problems: the last 24 hours, to the hour
STALE_REPORTS = 3  # a device is stale after missing this many of its expected POSTs
# The firmware's defaults (device/config.py): 20 readings a minute apart per POST, and a
# POST at least every 1200 s. A device whose desired settings say otherwise uses those.
DEFAULT_SETTINGS = {"interval_s": 60, "batch_size": 20, "max_batch_delay_s": 1200}
# Status counters the board keeps (device/delivery.py, device/app.py): lifetime totals
# since its counter last restarted. drop_* are the causes of `dropped`.
COUNTERS = ("sensor_errors", "dropped", "drop_full", "drop_clock", "drop_poison", "unverified")
# A counter whose growth makes a device a problem (drop_* are already in dropped).
PROBLEM_COUNTERS = ("sensor_errors", "dropped", "unverified")
MAX_LABEL_CHARS = 64


def seen_key(row: dict[str, Any]) -> int:
    last_seen = row.get("last_seen")
    return -1 if last_seen is None else int(last_seen)


def report_interval_s(desired: dict[str, Any] | None) -> int:
    """Seconds between a device's POSTs as its settings ask: a full batch of readings, or
    the batch delay if that comes first (the board sends at whichever comes first)."""
    settings = {**DEFAULT_SETTINGS, **{k: v for k, v in (desired or {}).items() if k in DEFAULT_SETTINGS}}
    full_batch = settings["interval_s"] * settings["batch_size"]
    delay = settings["max_batch_delay_s"]
    return max(settings["interval_s"], min(full_batch, delay) if delay else full_batch)


def stale_after_s(desired: dict[str, Any] | None) -> int:
    """Silence after which a device counts as stale: STALE_REPORTS of its POSTs missed
    (3600 s with the firmware's defaults). Stores keep it on the row (`stale_after`),
    recomputed whenever the desired settings change."""
    return STALE_REPORTS * report_interval_s(desired)


def is_stale(row: dict[str, Any], now: int) -> bool:
    last_seen = row.get("last_seen")
    limit = row.get("stale_after") or stale_after_s(row.get("desired"))
    return last_seen is None or last_seen + limit < now


def is_problem(row: dict[str, Any], now: int) -> bool:
    errors_at = row.get("errors_at")
    return is_stale(row, now) or (errors_at is not None and errors_at >= now - RECENT_WINDOW_S)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def counter_growth(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, int]:
    """How much each status counter grew between two reports. A counter below its last
    value restarted from zero (RTC memory lost at a power cut, a flash erased), so all of
    it is new; the first report ever counts whole."""
    growth = {}
    for key in COUNTERS:
        now_value = _count((new or {}).get(key))
        if now_value is None:
            continue
        before = _count((old or {}).get(key))
        grew = now_value - before if before is not None and now_value >= before else now_value
        if grew:
            growth[key] = grew
    return growth


def rolled_recent(recent: dict[str, Any] | None, growth: dict[str, int], now: int) -> dict[str, dict[str, int]]:
    """The device's `recent` counters: growth per hour (keyed by the hour's start, as a
    string), hours older than the window dropped."""
    oldest = now - RECENT_WINDOW_S - 3600
    out = {hour: dict(counts) for hour, counts in (recent or {}).items() if int(hour) > oldest}
    if growth:
        bucket = out.setdefault(str(now - now % 3600), {})
        for key, grew in growth.items():
            bucket[key] = bucket.get(key, 0) + grew
    return out


def recent_totals(recent: dict[str, Any] | None, now: int) -> dict[str, int]:
    """Each counter's growth over the last RECENT_WINDOW_S (whole hours, this one included)."""
    totals = dict.fromkeys(COUNTERS, 0)
    for hour, counts in (recent or {}).items():
        if int(hour) + 3600 > now - RECENT_WINDOW_S:
            for key, grew in counts.items():
                if key in totals:
                    totals[key] += grew
    return totals


class DeliveryCounters(NamedTuple):  # not a dataclass: on the ingest handler's cold start
    """What record_delivery writes beside the delivery itself: the row's `recent` counters
    and `errors_at` (the last time a PROBLEM_COUNTERS counter grew), or None to leave it."""

    recent: dict[str, dict[str, int]]
    errors_at: int | None


def delivery_counters(device: dict[str, Any], delivery: "Delivery") -> DeliveryCounters | None:
    if delivery.status is None:
        return None
    growth = counter_growth(device.get("last_status"), delivery.status)
    errors_at = delivery.now if any(key in growth for key in PROBLEM_COUNTERS) else device.get("errors_at")
    return DeliveryCounters(rolled_recent(device.get("recent"), growth, delivery.now), errors_at)


class InvalidLabel(ValueError):
    pass


def check_label(field: str, value: str) -> str:
    """A device's name or room: up to 64 printable characters, spaces trimmed ("" clears it)."""
    value = value.strip()
    if len(value) > MAX_LABEL_CHARS:
        raise InvalidLabel(f"{field} is {len(value)} characters: at most {MAX_LABEL_CHARS}")
    if any(not ch.isprintable() for ch in value):
        raise InvalidLabel(f"{field} holds a control character: use printable text only")
    return value


# The registry's listing and the scheduled alert job are split over this many parts of the
# fleet (cloud/stores/dynamodb.py's index partitions; one scheduled run each, in parallel).
DEVICE_SHARDS = 16
SHARDS = tuple(f"{n:02d}" for n in range(DEVICE_SHARDS))


def device_shard(device_id: str) -> str:
    """The part of the fleet a device belongs to: its id's CRC-32, evenly over DEVICE_SHARDS."""
    return SHARDS[zlib.crc32(device_id.encode()) % DEVICE_SHARDS]


def matches_status(row: dict[str, Any], status: str, now: int) -> bool:
    return status == "all" or (is_stale(row, now) if status == "stale" else is_problem(row, now))


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


def public_device(row: dict[str, Any], now: int | None = None) -> dict[str, Any]:
    """A registry row as the read API shows it: no secret; delivery health, staleness and
    the recent counters derived as of `now` (default: the clock's now)."""
    now = int(time.time()) if now is None else now
    first, last, received = row.get("first_seq"), row.get("max_seq"), row.get("received", 0)
    span = 0 if first is None or last is None else last - first + 1
    return {
        "device_id": row["device_id"],
        "name": row.get("name") or "",
        "room": row.get("room") or "",
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
        "stale_after_s": row.get("stale_after") or stale_after_s(row.get("desired")),
        "stale": is_stale(row, now),
        "problem": is_problem(row, now),
        "errors_at": row.get("errors_at"),
        # The status counters' growth over the last RECENT_WINDOW_S; their lifetime
        # totals are in last_status.
        "recent": {"window_s": RECENT_WINDOW_S, **recent_totals(row.get("recent"), now)},
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
    def page_devices(
        self, limit: int, cursor: str | None = None, sort: str = "id", status: str = "all"
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to `limit` registry rows after `cursor` in `sort` order, only those `status`
        selects as of now (DEVICE_SORTS, DEVICE_STATUSES above); the next page's cursor or
        None. A cursor handed out for another sort raises BadCursor."""
        ...

    def find_device(self, device_id: str) -> dict[str, Any] | None:
        """get_device for the read routes (GET /devices?device_id=): in DynamoDB a Query on the
        fleet index, since the read function may not GetItem the registry."""
        ...

    def set_labels(self, device_id: str, labels: dict[str, str]) -> None:
        """Set a device's `name` and/or `room` (checked with check_label; "" clears one),
        leaving everything else on the row. Raises NoSuchDevice."""
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
