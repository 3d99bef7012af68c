"""Hourly and daily summaries of a device's readings, so a long chart reads few items.

An hour item holds twelve 5-minute slots, a day item twenty-four 1-hour slots. A slot is
None (no reading) or [n, sum_t, min_t, max_t, sum_h, min_h, max_h]. Ingest recomputes the
items a batch touches from what is stored (the hour from its raw readings, the day from its
hour items), so a re-sent batch repairs a summary a failed request left behind, and a
summary computed from more readings never loses to one computed from fewer (`n` only grows).
A 30-day chart reads 31 day items; a 24-hour one 25 hour items.
"""

from collections.abc import Iterable, Sequence
from typing import Any

FINE = 300
HOUR = 3600
DAY = 86400
HOUR_LEVEL = "hour"
DAY_LEVEL = "day"
SLOTS = {HOUR_LEVEL: (HOUR, FINE), DAY_LEVEL: (DAY, HOUR)}  # level -> (item span, slot width)

Slot = list[float] | None


def _round(value: float) -> float:
    # Readings carry 0.1 resolution; sums of them do too, so rounding keeps them exact.
    return round(value, 3)


def slot_of(values: Iterable[tuple[float, float]]) -> Slot:
    """One slot from (t, h) pairs."""
    n, st, sh = 0, 0.0, 0.0
    lo_t = lo_h = float("inf")
    hi_t = hi_h = float("-inf")
    for t, h in values:
        n += 1
        st += t
        sh += h
        lo_t, hi_t, lo_h, hi_h = min(lo_t, t), max(hi_t, t), min(lo_h, h), max(hi_h, h)
    if not n:
        return None
    return [n, _round(st), lo_t, hi_t, _round(sh), lo_h, hi_h]


def merge(slots: Iterable[Slot]) -> Slot:
    """Several slots as one."""
    present = [s for s in slots if s]
    if not present:
        return None
    return [
        sum(s[0] for s in present),
        _round(sum(s[1] for s in present)),
        min(s[2] for s in present),
        max(s[3] for s in present),
        _round(sum(s[4] for s in present)),
        min(s[5] for s in present),
        max(s[6] for s in present),
    ]


def start_of(ts: int, width: int) -> int:
    return ts - ts % width


def hour_slots(hour_start: int, readings: Iterable[dict[str, Any]]) -> list[Slot]:
    """The twelve 5-minute slots of one hour, from its readings ({ts, t, h})."""
    by_slot: list[list[tuple[float, float]]] = [[] for _ in range(HOUR // FINE)]
    for r in readings:
        offset = r["ts"] - hour_start
        if 0 <= offset < HOUR:
            by_slot[offset // FINE].append((r["t"], r["h"]))
    return [slot_of(values) for values in by_slot]


def day_slots(day_start: int, hours: dict[int, list[Slot]]) -> list[Slot]:
    """The twenty-four 1-hour slots of one day, from its hour items (start -> slots)."""
    return [merge(hours.get(day_start + i * HOUR, ())) for i in range(DAY // HOUR)]


def count(slots: Sequence[Slot]) -> int:
    return int(sum(s[0] for s in slots if s))


def touched(timestamps: Iterable[int]) -> tuple[list[int], list[int]]:
    """The hour and day items a batch of readings changes."""
    hours = sorted({start_of(ts, HOUR) for ts in timestamps})
    days = sorted({start_of(h, DAY) for h in hours})
    return hours, days
