"""What the store holds against what each board produced: lost, stored twice, dropped by cause."""

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_tools.sim.run import DROP_CAUSES, Summary


@dataclass
class DeviceResult:
    device_id: str
    produced: int
    stored: int
    duplicates_stored: int
    lost: int
    missing_seqs: list[list[int]]
    dropped: int
    # dropped, by the cause the board gave (DROP_NAMES); "unexplained" is what they leave out
    drops: dict[str, int]
    unverified: int
    still_spooled: int
    requests: int
    bytes_on_wire: int
    heap_high_water: int
    sensor_errors: int
    power_cuts: int
    watchdog_resets: int
    # How each phase's wakes ended ({"run": {...}, "drain": {...}}): a cut or a watchdog
    # reset counts in the phase it happened in.
    boots: dict[str, dict[str, int]] = field(default_factory=dict)
    clock_forgotten: int = 0  # of drops["drop_clock"]: not the designed case


def _ranges(seqs: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for seq in sorted(seqs):
        if out and out[-1][1] == seq - 1:
            out[-1][1] = seq
        else:
            out.append([seq, seq])
    return out


Row = tuple[int, int, float, float]  # a stored reading: seq, ts, t, h


def readings_in_file(store_file: Path, device_id: str) -> list[Row]:
    """Every stored reading of a device, straight from the SQLite file."""
    with sqlite3.connect(f"file:{store_file}?mode=ro", uri=True) as db:
        query = "SELECT seq, ts, t, h FROM readings WHERE device_id = ?"
        return [(seq, ts, t, h) for (seq, ts, t, h) in db.execute(query, (device_id,))]


def readings_in_store(store: Any, device_id: str) -> list[Row]:
    """Every stored reading of a device through the store's own query (any store, DynamoDB included)."""
    items, cursor = store.query_readings(device_id, limit=1000)
    while cursor:
        more, cursor = store.query_readings(device_id, limit=1000, cursor=cursor)
        items += more
    return [(item["seq"], item["ts"], item["t"], item["h"]) for item in items]


def stored_twice(rows: list[Row], summary: Summary) -> int:
    """Readings stored again under another seq. Both stores key readings on (device, seq), so
    a seq never holds two items; a copy lives under a second seq. Judged by seq: a board
    that never renumbered gave its readings_taken readings the seqs below its counter, so a
    stored seq at or past the counter, or more stored seqs below it than readings taken, is
    a copy. Only where the seqs are not known (no counter, or a renumbering moved them) by
    content: the same (ts, t, h) twice, which readings taken in the same second with the
    same values also are, so it can only err towards "twice"."""
    seqs = {row[0] for row in rows}
    top = summary.next_seq
    if top is not None and top == summary.readings_taken:
        below = sum(1 for seq in seqs if seq < top)
        return len(seqs) - below + max(0, below - summary.readings_taken)
    seen: set[tuple[int, float, float]] = set()
    twice = 0
    for _seq, ts, t, h in sorted(rows):
        content = (ts, round(t, 1), round(h, 1))
        twice += content in seen
        seen.add(content)
    return twice


def readings_in_tables(db: Any, readings_table: str) -> dict[str, list[Row]]:
    """Every item of the DynamoDB readings table by device, read with a Scan of the table
    itself (not the store's queries)."""
    rows: dict[str, list[Row]] = {}
    names = {"#d": "device_id", "#s": "seq", "#ts": "ts", "#t": "t", "#h": "h"}
    kwargs: dict[str, Any] = {
        "TableName": readings_table,
        "ProjectionExpression": ", ".join(names),
        "ExpressionAttributeNames": names,
    }
    while True:
        page = db.scan(**kwargs)
        for item in page["Items"]:
            row = (int(item["seq"]["N"]), int(item["ts"]["N"]), float(item["t"]["N"]), float(item["h"]["N"]))
            rows.setdefault(item["device_id"]["S"], []).append(row)
        if "LastEvaluatedKey" not in page:
            return rows
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def verify(
    rows: list[Row], device_id: str, summary: Summary, phases: dict[str, dict[str, int]] | None = None
) -> DeviceResult:
    """Loss and duplicates from what the store holds, against the board's own seq counter.
    `phases`: how the wakes of each phase ended (default: the summary's, as one "run")."""
    phases = phases or {"run": summary.boots}
    stored = {row[0] for row in rows}
    sent_range = set(range(summary.readings_taken - summary.still_spooled))
    missing = sorted(sent_range - stored)
    return DeviceResult(
        device_id=device_id,
        produced=summary.readings_taken,
        stored=len(stored),
        duplicates_stored=stored_twice(rows, summary),
        # Readings the board counted as dropped (poison batches, or taken before a clock that a
        # second power cut left unknowable) are reported, not lost; anything else missing is lost.
        lost=max(0, len(missing) - summary.dropped),
        missing_seqs=_ranges(missing),
        dropped=summary.dropped,
        drops=_explained(summary),
        unverified=summary.unverified,
        still_spooled=summary.still_spooled,
        requests=summary.requests,
        bytes_on_wire=summary.bytes_sent + summary.bytes_received,
        heap_high_water=summary.heap_high_water,
        sensor_errors=summary.sensor_errors,
        power_cuts=sum(boots.get("power_cut", 0) for boots in phases.values()),
        watchdog_resets=sum(boots.get("watchdog", 0) for boots in phases.values()),
        boots=phases,
        clock_forgotten=summary.clock_forgotten,
    )


def _explained(summary: Summary) -> dict[str, int]:
    """The board's drops by cause; any part of status.dropped no cause accounts for is
    "unexplained", which fails the bench like a loss."""
    drops = {cause: summary.drops.get(cause, 0) for cause in DROP_CAUSES}
    unexplained = summary.dropped - sum(drops.values())
    if unexplained:
        drops["unexplained"] = unexplained
    return drops
