"""Embedded store: one SQLite file (WAL), a connection per thread.

Durability: journal_mode=WAL with synchronous=FULL, so every commit fsyncs the WAL before
store_batch returns, and so before the 200: an acknowledged reading survives the process
being killed and the machine losing power. (synchronous=NORMAL, the usual WAL pairing,
survives a killed process but may lose the last commits on power loss, which a board would
never re-send.) The -wal and -shm files beside the database are part of it: copy or move
the three together, never delete the -wal. A store that does not pass SQLite's quick_check
on opening is refused with one line naming the file and what to do. A batch's readings
and the device row's counters for them are one commit: a kill between two commits left
`received` short for good.
"""

import json
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

from cloud import rollups
from cloud.protocol import MAX_READINGS, Reading
from cloud.stores.base import (
    RECENT_WINDOW_S,
    RENUMBER_CEILING,
    Delivery,
    DeviceExists,
    NoSuchDevice,
    SeqConflict,
    StoreBusy,
    decode_device_cursor,
    decode_reading_cursor,
    decode_seen_cursor,
    delivery_counters,
    device_shard,
    encode_cursor,
    encode_seen_cursor,
    health_span,
    reading_item,
    same_content,
    stale_after_s,
)
from cloud.stores.base import merged_settings as _merged

# Under the device's 5 s HTTP timeout: a board waiting on another process's write (a CLI
# command, a second endpoint on the same DATA_DIR) gets a 503 with Retry-After, not silence.
BUSY_TIMEOUT_S = 3.0
FLEET_PAGE = 500  # rows a page of iter_devices and iter_alert_states holds
_Method = TypeVar("_Method", bound=Callable[..., Any])


def _busy_is_store_busy(method: _Method) -> _Method:
    @wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise StoreBusy(f"SQLite file stayed locked: {error}") from error
            raise

    return wrapper  # type: ignore[return-value]


SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen INTEGER,
    last_status TEXT,
    last_reading TEXT,
    first_seq INTEGER,
    max_seq INTEGER,
    received INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS readings (
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    t REAL NOT NULL,
    h REAL NOT NULL,
    received_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS readings_by_time ON readings (device_id, ts, seq);
CREATE TABLE IF NOT EXISTS rollups (
    device_id TEXT NOT NULL,
    level TEXT NOT NULL,
    start INTEGER NOT NULL,
    n INTEGER NOT NULL,
    slots TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, level, start)
) WITHOUT ROWID;
"""


_T = TypeVar("_T")


class _Job:
    """One caller's write, run by whichever caller holds the write lock."""

    def __init__(self, work: Callable[[sqlite3.Connection], Any], durable: bool) -> None:
        self.work = work
        self.durable = durable
        self.result: Any = None
        self.error: Exception | None = None
        self.done = False


class StoreDamaged(RuntimeError):
    """The SQLite file cannot be trusted; the message is one line for the user."""


class SQLiteStore:
    def __init__(self, path: str | Path, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = str(path)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        # SQLite has one writer at a time; threads that queue here instead of in SQLite's
        # busy handler (which sleeps with growing back-off) keep the tail latency short,
        # and their writes share one commit (_write).
        self._write_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Job] = []
        existed = Path(self.path).exists() and Path(self.path).stat().st_size > 0
        if existed:
            self._check_wal_present()
        try:
            db = self._connect()
            if existed:
                self._check(db)
            db.executescript(SCHEMA)
            self._add_fleet_columns(db)
        except sqlite3.DatabaseError as failure:
            raise self._damaged(str(failure)) from None

    def _damaged(self, what: str) -> StoreDamaged:
        what = " ".join(what.split())
        return StoreDamaged(
            f"{self.path} is damaged ({what}): stop the endpoint, move the file and its -wal/-shm aside, "
            "and restore a backup or start with an empty data dir"
        )

    def _check_wal_present(self) -> None:
        # After a crash the newest commits, acknowledged readings among them, may live only in
        # the -wal file. If it is gone while the -shm index still counts frames in it, SQLite
        # would open the older state without a word; refuse instead, before SQLite resets the index.
        shm, wal = Path(self.path + "-shm"), Path(self.path + "-wal")
        if not shm.exists() or (wal.exists() and wal.stat().st_size > 0):
            return
        header = shm.read_bytes()[:48]
        frames = int.from_bytes(header[16:20], sys.byteorder) if len(header) == 48 and header[12] else 0
        if frames:
            raise StoreDamaged(
                f"{self.path}-wal is missing but held {frames} pages of the newest writes (acknowledged readings "
                f"may be among them): put it back beside {Path(self.path).name}, or move {shm.name} aside to "
                "start from the older state"
            )

    def close(self) -> None:
        """Copy the WAL into the database file, so a clean stop leaves nothing only in the -wal,
        and close this thread's connection now: left to the garbage collector, it would close
        whenever a collection ran, and the last connection to close checkpoints the WAL."""
        db = self._connect()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        self._local.db = None

    def _check(self, db: sqlite3.Connection) -> None:
        # quick_check reads every page (O(size), ~1 s per GB): bytes appended to the file or
        # a torn page are found now, not in the middle of a read weeks later.
        problems = [row[0] for row in db.execute("PRAGMA quick_check(3)").fetchall()]
        if problems != ["ok"]:
            raise self._damaged("SQLite's check: " + " ".join(problems[0].split())[:120])
        size = Path(self.path).stat().st_size
        page_size, pages = db.execute("PRAGMA page_size").fetchone()[0], db.execute("PRAGMA page_count").fetchone()[0]
        if size > page_size * pages:
            raise self._damaged(f"{size - page_size * pages} bytes past the last page")

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    def _device_row(self, row: sqlite3.Row | None) -> dict[str, Any] | None:
        return None if row is None else self._device(row)

    def _device(self, row: sqlite3.Row) -> dict[str, Any]:
        out = dict(row)
        for key in ("last_status", "last_reading", "desired", "ota_target", "recent"):
            out[key] = json.loads(out[key]) if out[key] else None
        return out

    @_busy_is_store_busy
    def add_device(self, device_id: str, secret_hex: str, created_at: int) -> None:
        try:
            self._connect().execute(
                "INSERT INTO devices (device_id, secret, created_at) VALUES (?, ?, ?)",
                (device_id, secret_hex, created_at),
            )
        except sqlite3.IntegrityError:
            raise DeviceExists(device_id) from None

    @_busy_is_store_busy
    def get_device(self, device_id: str) -> dict[str, Any] | None:
        row = self._connect().execute("SELECT * FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        return self._device_row(row)

    @_busy_is_store_busy
    def list_devices(self) -> list[dict[str, Any]]:
        rows = self._connect().execute("SELECT * FROM devices ORDER BY device_id").fetchall()
        return [self._device(row) for row in rows]

    def iter_devices(self, shard: str | None = None) -> Iterator[dict[str, Any]]:
        """Keyset pages: no read transaction stays open while the caller writes."""
        for row in self._device_pages():
            if shard is None or device_shard(row["device_id"]) == shard:
                yield row

    def _device_pages(self) -> Iterator[dict[str, Any]]:
        after = ""
        while True:
            rows = (
                self._connect()
                .execute("SELECT * FROM devices WHERE device_id > ? ORDER BY device_id LIMIT ?", (after, FLEET_PAGE))
                .fetchall()
            )
            for row in rows:
                yield self._device(row)
            if len(rows) < FLEET_PAGE:
                return
            after = rows[-1]["device_id"]

    @_busy_is_store_busy
    def page_devices(
        self, limit: int, cursor: str | None = None, sort: str = "id", status: str = "all"
    ) -> tuple[list[dict[str, Any]], str | None]:
        # Keyset pages over an index in the sort's order (the primary key, or devices_by_seen);
        # a status filter skips rows along it, so no page ever reads the whole fleet at once.
        seen = "COALESCE(last_seen, -1)"
        db = self._connect()
        args: dict[str, Any] = {"limit": limit + 1, "now": int(time.time()), "window": RECENT_WINDOW_S}
        args["default"] = stale_after_s(None)
        # Only devices silent for the shortest stale_after of the fleet can be stale: a bound
        # on devices_by_seen, so a filtered page skips the reporting majority instead of
        # walking it (two index lookups find the bound).
        shortest = db.execute("SELECT MIN(stale_after) FROM devices").fetchone()[0]
        if shortest is None or db.execute("SELECT 1 FROM devices WHERE stale_after IS NULL LIMIT 1").fetchone():
            shortest = min(args["default"], shortest or args["default"])
        args["shortest"] = shortest
        stale = (
            f"({seen} < :now - :shortest AND (last_seen IS NULL OR last_seen + COALESCE(stale_after, :default) < :now))"
        )
        where: list[str] = []
        if sort == "id":
            order = "device_id"
            if cursor:
                where.append("device_id > :after")
                args["after"] = decode_device_cursor(cursor)
        else:
            direction, compare = ("DESC", "<") if sort.startswith("-") else ("ASC", ">")
            order = f"{seen} {direction}, device_id {direction}"
            if cursor:
                where.append(f"({seen}, device_id) {compare} (:key, :after)")
                args["key"], args["after"] = decode_seen_cursor(cursor, sort)

        # Only the fixed fragments above are joined into the SQL; every value is a named parameter.
        def part(*conditions: str, source: str = "devices") -> str:
            clause = " AND ".join([*conditions, *where])
            return f"SELECT * FROM {source}{' WHERE ' + clause if clause else ''} ORDER BY {order} LIMIT :limit"  # noqa: S608

        if status == "problems":
            # Stale devices and those with recent errors each come from an index of their
            # own, a page of each; the page is the first of their union (an OR would walk
            # the whole sort order past the healthy majority).
            recent = "errors_at >= :now - :window"
            # The few devices with recent errors, found by their index then sorted: left to
            # itself SQLite walks the sort's index instead.
            erring = part(recent, source="devices INDEXED BY devices_by_errors")
            sql = f"SELECT * FROM (SELECT * FROM ({part(stale)}) UNION SELECT * FROM ({erring}))"  # noqa: S608
            sql += f" ORDER BY {order} LIMIT :limit"
        else:
            sql = part(stale) if status == "stale" else part()
        rows = db.execute(sql, args).fetchall()
        page = [self._device(row) for row in rows[:limit]]
        if len(rows) <= limit:
            return page, None
        last = page[-1]
        return page, (encode_cursor({"after": last["device_id"]}) if sort == "id" else encode_seen_cursor(sort, last))

    def find_device(self, device_id: str) -> dict[str, Any] | None:
        return self.get_device(device_id)

    @_busy_is_store_busy
    def set_labels(self, device_id: str, labels: dict[str, str]) -> None:
        def work(db: sqlite3.Connection) -> None:
            row = db.execute("SELECT name, room FROM devices WHERE device_id = ?", (device_id,)).fetchone()
            if row is None:
                raise NoSuchDevice(device_id)
            db.execute(
                "UPDATE devices SET name = :name, room = :room WHERE device_id = :device",
                {
                    "name": labels.get("name", row["name"]) or None,
                    "room": labels.get("room", row["room"]) or None,
                    "device": device_id,
                },
            )

        self._write(work)

    @_busy_is_store_busy
    def remove_device(self, device_id: str) -> None:
        if not self._connect().execute("DELETE FROM devices WHERE device_id = ?", (device_id,)).rowcount:
            raise NoSuchDevice(device_id)

    @_busy_is_store_busy
    def set_secret(self, device_id: str, secret_hex: str) -> None:
        cursor = self._connect().execute("UPDATE devices SET secret = ? WHERE device_id = ?", (secret_hex, device_id))
        if not cursor.rowcount:
            raise NoSuchDevice(device_id)

    @_busy_is_store_busy
    def put_readings(self, device_id: str, readings: list[Reading], received_at: int, expires_at: int) -> list[Reading]:
        return self._write(lambda db: self._insert(db, device_id, readings, received_at, expires_at))

    @_busy_is_store_busy
    def store_batch(
        self, device: dict[str, Any], readings: list[Reading], status: dict[str, Any] | None, now: int, expires_at: int
    ) -> list[Reading]:
        def work(db: sqlite3.Connection) -> list[Reading]:
            new = self._insert(db, device["device_id"], readings, now, expires_at)
            self._record(db, device, Delivery(now, status, new))
            return new

        return self._write(work)

    def _insert(
        self, db: sqlite3.Connection, device_id: str, readings: list[Reading], received_at: int, expires_at: int
    ) -> list[Reading]:
        if len(readings) > MAX_READINGS:
            raise ValueError(f"at most {MAX_READINGS} readings per call (one request), got {len(readings)}")
        held = {
            row["seq"]: Reading(row["seq"], row["ts"], row["t"], row["h"])
            for row in db.execute(
                "SELECT seq, ts, t, h FROM readings WHERE device_id = ? AND seq IN (SELECT value FROM json_each(?))",
                (device_id, json.dumps([r.seq for r in readings])),
            )
        }
        conflicts = [r.seq for r in readings if r.seq in held and not same_content(held[r.seq], r)]
        if conflicts:
            (highest,) = db.execute(
                "SELECT MAX(seq) FROM readings WHERE device_id = ? AND seq < ?", (device_id, RENUMBER_CEILING)
            ).fetchone()
            raise SeqConflict(conflicts, 0 if highest is None else highest + 1)
        new = [r for r in readings if r.seq not in held]
        db.executemany(
            "INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(device_id, r.seq, r.ts, r.t, r.h, received_at, expires_at) for r in new],
        )
        return new

    @_busy_is_store_busy
    def record_delivery(self, device: dict[str, Any], delivery: Delivery) -> None:
        # Not a reading: the device row's figures need not wait for their own fsync; the next
        # readings commit fsyncs the WAL with them in it. Power lost in between costs a
        # last_seen, never a reading.
        self._write(lambda db: self._record(db, device, delivery), durable=False)

    def _record(self, db: sqlite3.Connection, device: dict[str, Any], delivery: Delivery) -> None:
        newest = max(delivery.stored, key=lambda r: (r.ts, r.seq)) if delivery.stored else None
        self._update_device(db, device, delivery, health_span(device, [r.seq for r in delivery.stored]), newest)
        counters = delivery_counters(device, delivery)
        if counters is not None:
            db.execute(
                "UPDATE devices SET recent = ?, errors_at = ? WHERE device_id = ?",
                (json.dumps(counters.recent), counters.errors_at, device["device_id"]),
            )

    def _write(self, work: Callable[[sqlite3.Connection], _T], durable: bool = True) -> _T:
        """Run `work` in a transaction that is on disk when this returns (group commit).

        With synchronous=FULL each commit waits for an fsync (milliseconds). Writers that
        arrive while one commits queue up; the next to take the lock runs every queued job,
        each in its own savepoint (a failing job rolls back alone and gets its exception),
        and commits them with one fsync. A job the lock holder already committed returns
        at once, so N concurrent requests cost about one fsync, not N.
        """
        job = _Job(work, durable)
        with self._queue_lock:
            self._queue.append(job)
        with self._write_lock:
            if not job.done:
                with self._queue_lock:
                    jobs, self._queue = self._queue, []
                self._commit(jobs)
        if job.error is not None:
            raise job.error
        return job.result

    def _commit(self, jobs: list["_Job"]) -> None:
        db = self._connect()
        try:
            db.execute("PRAGMA synchronous=" + ("FULL" if any(job.durable for job in jobs) else "NORMAL"))
            # The write lock before the first read: what a job's duplicate/conflict check reads
            # cannot change before COMMIT, even with another process on the same file.
            db.execute("BEGIN IMMEDIATE")
            for job in jobs:
                db.execute("SAVEPOINT job")
                try:
                    job.result = job.work(db)
                    db.execute("RELEASE job")
                except Exception as failure:
                    db.execute("ROLLBACK TO job")
                    db.execute("RELEASE job")
                    job.error = failure
            db.execute("COMMIT")
        except BaseException as failure:
            if db.in_transaction:
                db.execute("ROLLBACK")
            for job in jobs:
                job.error = job.error or (failure if isinstance(failure, Exception) else RuntimeError("write aborted"))
            if not isinstance(failure, Exception):
                raise
        finally:
            for job in jobs:
                job.done = True

    def _update_device(
        self,
        db: sqlite3.Connection,
        device: dict[str, Any],
        delivery: Delivery,
        seqs: list[int],
        newest: Reading | None,
    ) -> None:
        db.execute(
            """UPDATE devices SET
                 last_seen = ?,
                 last_status = COALESCE(?, last_status),
                 first_seq = CASE WHEN ? IS NULL THEN first_seq ELSE MIN(COALESCE(first_seq, ?), ?) END,
                 max_seq = CASE WHEN ? IS NULL THEN max_seq ELSE MAX(COALESCE(max_seq, ?), ?) END,
                 received = received + ?,
                 last_reading = CASE
                   WHEN ? IS NULL THEN last_reading
                   WHEN last_reading IS NULL THEN ?
                   WHEN json_extract(last_reading, '$.ts') <= ? THEN ?
                   ELSE last_reading END
               WHERE device_id = ?""",
            (
                delivery.now,
                json.dumps(delivery.status) if delivery.status is not None else None,
                *([min(seqs)] * 3 if seqs else [None] * 3),
                *([max(seqs)] * 3 if seqs else [None] * 3),
                len(seqs),
                *(
                    [json.dumps(reading_item(newest))] * 2 + [newest.ts, json.dumps(reading_item(newest))]
                    if newest
                    else [None] * 4
                ),
                device["device_id"],
            ),
        )

    @_busy_is_store_busy
    def latest_reading(self, device_id: str) -> dict[str, Any] | None:
        row = (
            self._connect()
            .execute(
                "SELECT seq, ts, t, h FROM readings WHERE device_id = ? ORDER BY ts DESC, seq DESC LIMIT 1",
                (device_id,),
            )
            .fetchone()
        )
        return dict(row) if row else None

    @_busy_is_store_busy
    def query_readings(
        self,
        device_id: str,
        from_ts: int | None = None,
        to_ts: int | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        sql = "SELECT seq, ts, t, h FROM readings WHERE device_id = ?"
        args: list[Any] = [device_id]
        if from_ts is not None:
            sql += " AND ts >= ?"
            args.append(from_ts)
        # One upper bound, as a row value: SQLite seeks the (device_id, ts, seq) index to it,
        # so a deep page costs what the first does. `ts <= to` (seq >= 0) is (ts, seq) < (to + 1, 0);
        # with both a `ts < ?` and a row value SQLite would use the former and walk every newer
        # reading; `ts < ? OR (ts = ? AND seq < ?)` only uses the device_id part of the index.
        bounds = [decode_reading_cursor(cursor)] if cursor else []
        if to_ts is not None:
            bounds.append((to_ts + 1, 0))
        if bounds:
            sql += " AND (ts, seq) < (?, ?)"
            args += list(min(bounds))
        sql += " ORDER BY ts DESC, seq DESC LIMIT ?"
        args.append(limit + 1)
        rows = [dict(row) for row in self._connect().execute(sql, args).fetchall()]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (encode_cursor([rows[-1]["ts"], rows[-1]["seq"]]) if more else None)

    # -- alerts (docs/alerts.md) ----------------------------------------------
    def _alerts_db(self) -> sqlite3.Connection:
        db = self._connect()
        if not getattr(self, "_alert_tables", False):
            with self._write_lock:
                db.executescript(ALERT_SCHEMA)
            self._alert_tables = True
        return db

    def put_alert_rule(self, rule: dict[str, Any], secret: dict[str, str] | None) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO alert_rules (rule_id, rule) VALUES (?, ?)", (rule["rule_id"], json.dumps(rule)))
            if secret:
                db.execute(
                    "INSERT INTO alert_secrets VALUES (?, ?, ?)",
                    (rule["rule_id"], secret["webhook_url"], secret["webhook_secret"]),
                )

        self._alerts_db()
        self._write(work)

    def list_alert_rules(self) -> list[dict[str, Any]]:
        rows = self._alerts_db().execute("SELECT rule, last_delivery FROM alert_rules ORDER BY rule_id").fetchall()
        return [
            {**json.loads(row["rule"]), "last_delivery": json.loads(row["last_delivery"] or "null")} for row in rows
        ]

    def get_alert_secret(self, rule_id: str) -> dict[str, str] | None:
        row = (
            self._alerts_db()
            .execute("SELECT webhook_url, webhook_secret FROM alert_secrets WHERE rule_id = ?", (rule_id,))
            .fetchone()
        )
        return dict(row) if row else None

    def remove_alert_rule(self, rule_id: str) -> None:
        from cloud.alerts.rules import NoSuchRule

        def work(db: sqlite3.Connection) -> int:
            found = db.execute("DELETE FROM alert_rules WHERE rule_id = ?", (rule_id,)).rowcount
            db.execute("DELETE FROM alert_secrets WHERE rule_id = ?", (rule_id,))
            db.execute("DELETE FROM alert_state WHERE rule_id = ?", (rule_id,))
            return found

        self._alerts_db()
        if not self._write(work):
            raise NoSuchRule(rule_id)

    # Alert state, history and delivery records are derived, not acknowledged data: they
    # join the group commit without asking for an fsync of their own (durable=False).
    def record_alert_delivery(self, rule_id: str, event_id: str | None, delivery: dict[str, Any]) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("UPDATE alert_rules SET last_delivery = ? WHERE rule_id = ?", (json.dumps(delivery), rule_id))
            if event_id:
                db.execute(
                    "UPDATE alert_events SET event = json_set(event, '$.delivery', json(?)) WHERE event_id = ?",
                    (json.dumps(delivery), event_id),
                )

        self._alerts_db()
        self._write(work, durable=False)

    def alert_states(self, device_id: str | None = None) -> list[dict[str, Any]]:
        sql, args = "SELECT state, version FROM alert_state", [] if device_id is None else [device_id]
        if device_id is not None:
            sql += " WHERE device_id = ?"
        rows = self._alerts_db().execute(sql, args).fetchall()
        return [{**json.loads(row["state"]), "version": row["version"]} for row in rows]

    def iter_alert_states(self, shard: str | None = None) -> Iterator[dict[str, Any]]:
        for state in self._state_pages():
            if shard is None or device_shard(state["device_id"]) == shard:
                yield state

    def _state_pages(self) -> Iterator[dict[str, Any]]:
        after: tuple[str, str] = ("", "")
        while True:
            rows = (
                self._alerts_db()
                .execute(
                    "SELECT device_id, rule_id, state, version FROM alert_state WHERE (device_id, rule_id) > (?, ?) "
                    "ORDER BY device_id, rule_id LIMIT ?",
                    (*after, FLEET_PAGE),
                )
                .fetchall()
            )
            for row in rows:
                yield {**json.loads(row["state"]), "version": row["version"]}
            if len(rows) < FLEET_PAGE:
                return
            after = (rows[-1]["device_id"], rows[-1]["rule_id"])

    def put_alert_state(self, state: dict[str, Any], expected_version: int) -> bool:
        """Write `state` if the stored one is still at `expected_version` (0: none stored)."""
        body = json.dumps({k: v for k, v in state.items() if k != "version"})
        key = (state["device_id"], state["rule_id"])

        def work(db: sqlite3.Connection) -> int:
            if expected_version == 0:
                sql = "INSERT OR IGNORE INTO alert_state VALUES (?, ?, ?, ?)"
                return db.execute(sql, (*key, body, state["version"])).rowcount
            sql = "UPDATE alert_state SET state = ?, version = ? WHERE device_id = ? AND rule_id = ? AND version = ?"
            return db.execute(sql, (body, state["version"], *key, expected_version)).rowcount

        self._alerts_db()
        return self._write(work, durable=False) == 1

    def add_alert_event(self, event: dict[str, Any], expires_at: int) -> None:
        row = (event["event_id"], event["at"], event["rule_id"], event["device_id"], json.dumps(event), expires_at)
        self._alerts_db()
        self._write(lambda db: db.execute("INSERT INTO alert_events VALUES (?, ?, ?, ?, ?, ?)", row), durable=False)

    def alert_events(self, now: int, limit: int = 100, rule_id: str | None = None) -> list[dict[str, Any]]:
        """History newest first, without what has outlived its retention."""
        sql = "SELECT event FROM alert_events WHERE expires_at > ?"
        args: list[Any] = [now]
        if rule_id:
            sql += " AND rule_id = ?"
            args.append(rule_id)
        sql += " ORDER BY event_id DESC LIMIT ?"
        rows = self._alerts_db().execute(sql, [*args, limit]).fetchall()
        return [json.loads(row["event"]) for row in rows]

    def prune_alert_events(self, now: int) -> int:
        self._alerts_db()
        sql = "DELETE FROM alert_events WHERE expires_at <= ?"
        return self._write(lambda db: db.execute(sql, (now,)).rowcount, durable=False)

    # -- rollups (cloud/rollups.py) -------------------------------------------
    def update_rollups(self, device_id: str, readings: list[Reading], expires_at: int) -> None:
        """Ingest's hook: here, in the same process, right after the batch is stored."""
        self.summarise(device_id, [r.ts for r in readings], expires_at)

    @_busy_is_store_busy
    def summarise(self, device_id: str, timestamps: list[int], expires_at: int) -> None:
        """Recompute the hour and day items these reading times fall in, from what is stored."""
        hours, days = rollups.touched(timestamps)
        if not hours:
            return

        def recompute(db: sqlite3.Connection) -> None:
            for start in hours:
                rows = db.execute(
                    "SELECT ts, t, h FROM readings WHERE device_id = ? AND ts >= ? AND ts < ?",
                    (device_id, start, start + rollups.HOUR),
                ).fetchall()
                slots = rollups.hour_slots(start, rows)
                self._put_rollup(db, device_id, rollups.HOUR_LEVEL, start, slots, expires_at)
            for start in days:
                hours_of_day = self._rollup_rows(db, device_id, rollups.HOUR_LEVEL, start, start + rollups.DAY - 1)
                slots = rollups.day_slots(start, dict(hours_of_day))
                self._put_rollup(db, device_id, rollups.DAY_LEVEL, start, slots, expires_at)

        # Derived from readings already on disk, and recomputed by the next batch of the same
        # hour: no fsync of its own.
        self._write(recompute, durable=False)

    def _put_rollup(
        self, db: sqlite3.Connection, device_id: str, level: str, start: int, slots: list[Any], expires_at: int
    ) -> None:
        db.execute(
            """INSERT INTO rollups VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (device_id, level, start) DO UPDATE
               SET n = excluded.n, slots = excluded.slots, expires_at = MAX(expires_at, excluded.expires_at)
               WHERE excluded.n >= rollups.n""",
            (device_id, level, start, rollups.count(slots), json.dumps(slots), expires_at),
        )

    def _rollup_rows(
        self, db: sqlite3.Connection, device_id: str, level: str, from_ts: int, to_ts: int
    ) -> list[tuple[int, list[Any]]]:
        rows = db.execute(
            "SELECT start, slots FROM rollups WHERE device_id = ? AND level = ? AND start BETWEEN ? AND ?"
            " ORDER BY start",
            (device_id, level, from_ts, to_ts),
        ).fetchall()
        return [(row["start"], json.loads(row["slots"])) for row in rows]

    @_busy_is_store_busy
    def query_rollups(self, device_id: str, level: str, from_ts: int, to_ts: int) -> list[tuple[int, list[Any]]]:
        """The items of a level whose start lies in [from_ts, to_ts], oldest first, as (start, slots)."""
        return self._rollup_rows(self._connect(), device_id, level, from_ts, to_ts)

    # -- fleet management (remote settings) ---------------------------------
    def _add_fleet_columns(self, db: sqlite3.Connection) -> None:
        # Added to the devices table in place, so a store file made by an older version
        # keeps its devices and readings.
        have = {row["name"] for row in db.execute("PRAGMA table_info(devices)")}
        for column, kind in (
            ("desired", "TEXT"),
            ("desired_version", "INTEGER NOT NULL DEFAULT 0"),
            ("ota_target", "TEXT"),
            ("name", "TEXT"),
            ("room", "TEXT"),
            ("stale_after", "INTEGER"),  # stale_after_s(desired), NULL for the default
            ("errors_at", "INTEGER"),
            ("recent", "TEXT"),
        ):
            if column not in have:
                db.execute(f"ALTER TABLE devices ADD COLUMN {column} {kind}")
        # The fleet page sorted by last seen, never-seen devices first (cloud/stores/base.py).
        db.execute("CREATE INDEX IF NOT EXISTS devices_by_seen ON devices (COALESCE(last_seen, -1), device_id)")
        # The stale bound (page_devices) and the problems filter's recent errors.
        db.execute("CREATE INDEX IF NOT EXISTS devices_by_stale_after ON devices (stale_after)")
        db.execute("CREATE INDEX IF NOT EXISTS devices_by_errors ON devices (errors_at)")

    @_busy_is_store_busy
    def set_desired(self, device_id: str, changes: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        def work(db: sqlite3.Connection) -> tuple[int, dict[str, Any]]:
            row = db.execute(
                "SELECT desired, desired_version FROM devices WHERE device_id = ?", (device_id,)
            ).fetchone()
            if row is None:
                raise NoSuchDevice(device_id)
            desired = _merged(json.loads(row["desired"] or "{}"), changes)
            version = row["desired_version"] + 1
            stale_after = stale_after_s(desired)
            db.execute(
                "UPDATE devices SET desired = ?, desired_version = ?, stale_after = ? WHERE device_id = ?",
                (
                    json.dumps(desired, sort_keys=True),
                    version,
                    None if stale_after == stale_after_s(None) else stale_after,
                    device_id,
                ),
            )
            return version, desired

        return self._write(work)

    @_busy_is_store_busy
    def set_ota_target(self, device_id: str, target: dict[str, Any] | None) -> None:
        def work(db: sqlite3.Connection) -> None:
            cursor = db.execute(
                "UPDATE devices SET ota_target = ? WHERE device_id = ?",
                (json.dumps(target) if target else None, device_id),
            )
            if not cursor.rowcount:
                raise NoSuchDevice(device_id)

        self._write(work)


# Alert rules, their webhook secrets, per-(device, rule) state and a 30-day history.
ALERT_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_rules (rule_id TEXT PRIMARY KEY, rule TEXT NOT NULL, last_delivery TEXT);
CREATE TABLE IF NOT EXISTS alert_secrets (
    rule_id TEXT PRIMARY KEY, webhook_url TEXT NOT NULL, webhook_secret TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alert_state (
    device_id TEXT NOT NULL, rule_id TEXT NOT NULL, state TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (device_id, rule_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alert_events (
    event_id TEXT PRIMARY KEY, at INTEGER NOT NULL, rule_id TEXT NOT NULL, device_id TEXT NOT NULL,
    event TEXT NOT NULL, expires_at INTEGER NOT NULL
);
"""
