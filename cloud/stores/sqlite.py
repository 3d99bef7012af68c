"""Embedded store: one SQLite file (WAL), a connection per thread."""

import base64
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from cloud.protocol import Reading
from cloud.stores.base import Delivery, DeviceExists, NoSuchDevice, reading_item

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
"""


def _encode_cursor(ts: int, seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([ts, seq]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        ts, seq = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return int(ts), int(seq)
    except (ValueError, TypeError):
        raise ValueError("cursor is not one this API returned") from None


class SQLiteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        # SQLite has one writer at a time; threads that queue here instead of in SQLite's
        # busy handler (which sleeps with growing back-off) keep the tail latency short.
        self._write_lock = threading.Lock()
        with self._connect() as db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA busy_timeout=30000")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    def _device_row(self, row: sqlite3.Row | None) -> dict[str, Any] | None:
        if row is None:
            return None
        out = dict(row)
        for key in ("last_status", "last_reading"):
            out[key] = json.loads(out[key]) if out[key] else None
        return out

    def add_device(self, device_id: str, secret_hex: str, created_at: int) -> None:
        try:
            self._connect().execute(
                "INSERT INTO devices (device_id, secret, created_at) VALUES (?, ?, ?)",
                (device_id, secret_hex, created_at),
            )
        except sqlite3.IntegrityError:
            raise DeviceExists(device_id) from None

    def get_device(self, device_id: str) -> dict[str, Any] | None:
        row = self._connect().execute("SELECT * FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        return self._device_row(row)

    def list_devices(self) -> list[dict[str, Any]]:
        rows = self._connect().execute("SELECT * FROM devices ORDER BY device_id").fetchall()
        return [self._device_row(row) for row in rows]

    def remove_device(self, device_id: str) -> None:
        if not self._connect().execute("DELETE FROM devices WHERE device_id = ?", (device_id,)).rowcount:
            raise NoSuchDevice(device_id)

    def set_secret(self, device_id: str, secret_hex: str) -> None:
        cursor = self._connect().execute("UPDATE devices SET secret = ? WHERE device_id = ?", (secret_hex, device_id))
        if not cursor.rowcount:
            raise NoSuchDevice(device_id)

    def put_readings(self, device_id: str, readings: list[Reading], received_at: int, expires_at: int) -> list[Reading]:
        db = self._connect()
        stored = []
        with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                for r in readings:
                    cursor = db.execute(
                        "INSERT OR IGNORE INTO readings VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (device_id, r.seq, r.ts, r.t, r.h, received_at, expires_at),
                    )
                    if cursor.rowcount:
                        stored.append(r)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return stored

    def record_delivery(self, device: dict[str, Any], delivery: Delivery) -> None:
        db = self._connect()
        stored = delivery.stored
        newest = max(stored, key=lambda r: (r.ts, r.seq)) if stored else None
        with self._write_lock:
            self._update_device(db, device, delivery, stored, newest)

    def _update_device(
        self,
        db: sqlite3.Connection,
        device: dict[str, Any],
        delivery: Delivery,
        stored: list[Reading],
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
                *([min(r.seq for r in stored)] * 3 if stored else [None] * 3),
                *([max(r.seq for r in stored)] * 3 if stored else [None] * 3),
                len(stored),
                *(
                    [json.dumps(reading_item(newest))] * 2 + [newest.ts, json.dumps(reading_item(newest))]
                    if newest
                    else [None] * 4
                ),
                device["device_id"],
            ),
        )

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
        if to_ts is not None:
            sql += " AND ts <= ?"
            args.append(to_ts)
        if cursor:
            ts, seq = decode_cursor(cursor)
            sql += " AND (ts < ? OR (ts = ? AND seq < ?))"
            args += [ts, ts, seq]
        sql += " ORDER BY ts DESC, seq DESC LIMIT ?"
        args.append(limit + 1)
        rows = [dict(row) for row in self._connect().execute(sql, args).fetchall()]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (_encode_cursor(rows[-1]["ts"], rows[-1]["seq"]) if more else None)
