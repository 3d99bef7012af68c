"""The node's spool: unsent readings and the node's counters in one SQLite file.

SQLite in WAL mode with synchronous=FULL: every append, ack and renumbering is one
transaction that is on disk when the call returns, so a power cut loses at most the
reading being written, and `dhtlink node status` can read the file while the node
writes it. docs/pi-node.md says why this and not the firmware's record file.

Seq rules are the firmware's: a seq is given once, strictly increasing, never reused;
a reading's ts never changes once it may have reached the receiver.
"""

import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

FILE = "spool.sqlite"
DEFAULT_MAX_ITEMS = 100_000  # 69 days at one reading a minute

# readings.sent: whether the receiver may hold the reading under its seq.
NEVER_SENT = 0  # no request carried it: a clock correction may still move its ts
IN_FLIGHT = 1  # in a request whose answer has not been judged yet
MAYBE_STORED = 2  # a request carrying it got no verified answer: its content is fixed

# dropped = drop_full + drop_poison, as the firmware reports them (a Pi node has no
# clock-epoch drops: its clock is the system's).
COUNTERS = (
    "next_seq",
    "dropped",
    "drop_full",
    "drop_poison",
    "sensor_errors",
    "unverified",
    "requests",
    "rejected",
    "boot",
)
NOTES = ("clock_offset", "last_send", "last_send_at", "last_error", "last_error_at")


@dataclass
class Item:
    seq: int
    ts: int
    t10: int
    h10: int


class SpoolError(Exception):
    """The spool file cannot be opened or is not a dhtlink spool."""


class Spool:
    def __init__(self, directory: Path | str, max_items: int = DEFAULT_MAX_ITEMS, readonly: bool = False) -> None:
        self.path = Path(directory) / FILE
        self.max_items = max_items
        try:
            if readonly:
                self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, isolation_level=None)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=FULL")
                self._create()
            self.db.execute("PRAGMA busy_timeout=5000")
            self.db.execute("SELECT count(*) FROM readings").fetchone()
        except (sqlite3.Error, OSError) as error:
            raise SpoolError(f"cannot use the spool {self.path}: {error}") from None

    def _create(self) -> None:
        with self._write():
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS readings (seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, "
                "t10 INTEGER NOT NULL, h10 INTEGER NOT NULL, sent INTEGER NOT NULL DEFAULT 0)"
            )
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)")
            for key in COUNTERS:
                self.db.execute("INSERT OR IGNORE INTO meta VALUES (?, 0)", (key,))
            # A request cut short by a crash or power cut may have been stored.
            self.db.execute("UPDATE readings SET sent = ? WHERE sent = ?", (MAYBE_STORED, IN_FLIGHT))

    @contextmanager
    def _write(self):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

    # -- counters and notes ---------------------------------------------------
    def get(self, key: str):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _add(self, key: str, n: int) -> None:
        self.db.execute("UPDATE meta SET value = value + ? WHERE key = ?", (n, key))

    def count(self, key: str, n: int = 1) -> None:
        with self._write():
            self._add(key, n)

    def note(self, **values) -> None:
        with self._write():
            for key, value in values.items():
                self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def snapshot(self) -> dict:
        """Everything `dhtlink node status` shows: counters, notes, depth, oldest unsent."""
        out = {key: value for key, value in self.db.execute("SELECT key, value FROM meta")}
        depth, oldest = self.db.execute("SELECT count(*), min(ts) FROM readings").fetchone()
        out.update(spool_depth=depth, oldest_unsent_ts=oldest)
        return out

    # -- the queue -------------------------------------------------------------
    def depth(self) -> int:
        return self.db.execute("SELECT count(*) FROM readings").fetchone()[0]

    def append(self, ts: int, t10: int, h10: int) -> int:
        """Store one reading under the next seq; returns the seq. Full: the oldest 1 % are
        dropped and counted first, as the firmware does."""
        with self._write():
            depth = self.db.execute("SELECT count(*) FROM readings").fetchone()[0]
            if depth >= self.max_items:
                self._drop_oldest(max(1, self.max_items // 100))
            seq = self.get("next_seq")
            self.db.execute("INSERT INTO readings (seq, ts, t10, h10) VALUES (?, ?, ?, ?)", (seq, ts, t10, h10))
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (seq + 1,))
        return seq

    def peek(self, n: int) -> list[Item]:
        rows = self.db.execute("SELECT seq, ts, t10, h10 FROM readings ORDER BY seq LIMIT ?", (n,))
        return [Item(*row) for row in rows]

    def oldest_ts(self) -> int | None:
        return self.db.execute("SELECT min(ts) FROM readings").fetchone()[0]

    def mark_in_flight(self, items: list[Item]) -> None:
        """Before a request leaves: from here on a crash means 'may have been stored'."""
        with self._write():
            self.db.executemany(
                "UPDATE readings SET sent = ? WHERE seq = ? AND sent = ?",
                [(IN_FLIGHT, item.seq, NEVER_SENT) for item in items],
            )

    def settle(self, items: list[Item], stored: bool) -> None:
        """After an answer: `stored` False means a verified answer said nothing was stored."""
        before, after = (IN_FLIGHT, MAYBE_STORED) if stored else (IN_FLIGHT, NEVER_SENT)
        with self._write():
            self.db.executemany(
                "UPDATE readings SET sent = ? WHERE seq = ? AND sent = ?", [(after, item.seq, before) for item in items]
            )

    def ack(self, items: list[Item]) -> None:
        """The receiver acknowledged these readings (stored, duplicate or rejected)."""
        with self._write():
            self.db.executemany("DELETE FROM readings WHERE seq = ?", [(item.seq,) for item in items])

    def drop(self, items: list[Item]) -> None:
        """The receiver refused these for good (poison): remove them and count them."""
        with self._write():
            cur = self.db.executemany("DELETE FROM readings WHERE seq = ?", [(item.seq,) for item in items])
            self._add("dropped", cur.rowcount)
            self._add("drop_poison", cur.rowcount)

    def _drop_oldest(self, n: int) -> None:
        cur = self.db.execute("DELETE FROM readings WHERE seq IN (SELECT seq FROM readings ORDER BY seq LIMIT ?)", (n,))
        self._add("dropped", cur.rowcount)
        self._add("drop_full", cur.rowcount)

    def renumber_from(self, next_seq: int) -> tuple[int, int]:
        """The receiver holds other readings under our seqs (our counter restarted): give
        every spooled reading a new seq from next_seq on, in order, in one transaction.
        Returns the new first and last seq."""
        with self._write():
            seqs = [seq for (seq,) in self.db.execute("SELECT seq FROM readings ORDER BY seq")]
            # Through negative seqs, so no new seq meets an old one mid-update.
            self.db.executemany("UPDATE readings SET seq = ? WHERE seq = ?", [(-1 - s, s) for s in seqs])
            self.db.executemany(
                "UPDATE readings SET seq = ?, sent = ? WHERE seq = ?",
                [(next_seq + i, NEVER_SENT, -1 - s) for i, s in enumerate(seqs)],
            )
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (next_seq + len(seqs),))
        return next_seq, next_seq + len(seqs) - 1

    def correct_clock(self, offset: int) -> int:
        """The node's clock offset became `offset` seconds: readings no request has carried
        move by the change; any other keeps its ts (a re-send must be byte-for-byte the
        same). Returns how many moved."""
        with self._write():
            delta = offset - (self.get("clock_offset") or 0)
            cur = self.db.execute("UPDATE readings SET ts = ts + ? WHERE sent = ?", (delta, NEVER_SENT))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('clock_offset', ?)", (offset,))
        return cur.rowcount if delta else 0
