"""GET /data/series: a device's readings over a time range as at most `points` chart points.

Short ranges give the stored readings themselves. Longer ones give buckets of 5 minutes
to a day built from the hour and day summaries ingest keeps (cloud/rollups.py), each with
the mean, minimum and maximum of its readings, so the cost of a chart depends on its
range, not on how often the device reads: a 30-day chart reads 31 day items.
A gap in the data (no point for more than twice the usual spacing) is a null point, so a
chart draws a gap instead of a line across it.
"""

import math
import re
from statistics import median
from typing import Any

from cloud import protocol, rollups
from cloud.stores.base import Store

MAX_POINTS = 1000
DEFAULT_POINTS = 800
DEFAULT_RANGE = rollups.DAY
RAW_PER_POINT = 60  # try the readings themselves when the range is at most one a minute per point
FINE_STEPS = (300, 600, 900, 1800)  # from hour items' 5-minute slots
COARSE_STEPS = (3600, 7200, 10800, 14400, 21600, 43200, 86400)  # from day items' 1-hour slots
WHOLE = re.compile(r"[0-9]{1,16}")  # ASCII digits only: str.isdigit() also takes "²"
COLUMNS = ("ts", "n", "t", "t_min", "t_max", "h", "h_min", "h_max")


def pick_step(span: int, points: int) -> int:
    """The finest bucket width that fits the range in `points` buckets."""
    for step in FINE_STEPS + COARSE_STEPS:
        if math.ceil(span / step) <= points:
            return step
    return rollups.DAY * math.ceil(span / points / rollups.DAY)


def _raw(store: Store, device_id: str, from_ts: int, to_ts: int, points: int) -> list[list[Any]] | None:
    items, more = store.query_readings(device_id, from_ts, to_ts, points)
    if more:
        return None
    return [[r["ts"], 1, r["t"], r["t"], r["t"], r["h"], r["h"], r["h"]] for r in reversed(items)]


def _buckets(store: Store, device_id: str, from_ts: int, to_ts: int, step: int) -> list[list[Any]]:
    level = rollups.HOUR_LEVEL if step < rollups.HOUR else rollups.DAY_LEVEL
    span, width = rollups.SLOTS[level]
    merged: dict[int, list[float]] = {}
    for start, slots in store.query_rollups(device_id, level, rollups.start_of(from_ts, span), to_ts):
        for index, slot in enumerate(slots):
            slot_start = start + index * width
            if slot and from_ts < slot_start + width and slot_start <= to_ts:
                bucket = rollups.start_of(slot_start, step)
                combined = rollups.merge([merged.get(bucket), slot])
                if combined:  # never empty here: slot is not
                    merged[bucket] = combined
    rows = []
    for bucket in sorted(merged):
        n, st, lo_t, hi_t, sh, lo_h, hi_h = merged[bucket]
        rows.append([bucket, n, round(st / n, 2), lo_t, hi_t, round(sh / n, 2), lo_h, hi_h])
    return rows


def with_gaps(rows: list[list[Any]], step: int) -> list[list[Any]]:
    """A null point wherever the spacing is over twice the usual (the step, or the median)."""
    if len(rows) < 2:
        return rows
    usual = max(step, median(b[0] - a[0] for a, b in zip(rows, rows[1:], strict=False)))
    out = [rows[0]]
    for before, row in zip(rows, rows[1:], strict=False):
        if row[0] - before[0] > 2 * usual:
            out.append([(before[0] + row[0]) // 2] + [None] * (len(COLUMNS) - 1))
        out.append(row)
    return out


def series(store: Store, device_id: str, from_ts: int, to_ts: int, points: int) -> dict[str, Any]:
    span = to_ts - from_ts + 1
    rows = _raw(store, device_id, from_ts, to_ts, points) if span <= points * RAW_PER_POINT else None
    step = 0
    if rows is None:
        step = pick_step(span, points)
        rows = _buckets(store, device_id, from_ts, to_ts, step)
    rows = with_gaps(rows, step)
    if len(rows) > points:  # gap markers can push it over: widen the buckets once more
        step = pick_step(span, points // 2)
        rows = with_gaps(_buckets(store, device_id, from_ts, to_ts, step), step)
    return {
        "device_id": device_id,
        "from": from_ts,
        "to": to_ts,
        "step": step,  # 0: the readings themselves; else the bucket width in seconds
        **{name: [row[i] for row in rows] for i, name in enumerate(COLUMNS)},
    }


def _whole(params: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name) or ""
    if not raw:
        return default
    if not WHOLE.fullmatch(raw) or not lo <= int(raw) <= hi:
        raise ValueError(f"{name} must be a whole number from {lo} to {hi}")
    return int(raw)


def from_params(store: Store, params: dict[str, str], now: float) -> dict[str, Any]:
    """The route: device_id, from and to (Unix seconds; default the last 24 hours), points (default 800)."""
    device_id = params.get("device_id") or ""
    if not protocol.DEVICE_ID.fullmatch(device_id):
        raise ValueError("device_id is required: 1-64 characters of A-Z a-z 0-9 _ -")
    to_ts = _whole(params, "to", int(now), 0, 2**40)
    from_ts = _whole(params, "from", max(0, to_ts - DEFAULT_RANGE), 0, 2**40)
    if from_ts >= to_ts:
        raise ValueError("from must be before to")
    points = _whole(params, "points", DEFAULT_POINTS, 10, MAX_POINTS)
    return series(store, device_id, from_ts, to_ts, points)
