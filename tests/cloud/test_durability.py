"""What `dhtlink serve` acknowledged is on disk: kills under load, and damaged files refused on start."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cloud import signing
from cloud.protocol import Reading
from cloud.stores.sqlite import SQLiteStore, StoreDamaged
from host_tools import registry
from host_tools.registry import STORE_FILE
from tests.cloud.test_hostile import start_serve

DHTLINK = str(Path(sys.executable).parent / "dhtlink")
DEVICES = 4
SECRET = "ab" * 32


def test_settings_put_each_commit_on_disk(tmp_path):
    db = SQLiteStore(tmp_path / "s.sqlite3")._connect()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: the WAL is fsynced at each commit


class _Poster(threading.Thread):
    """One device posting signed batches back to back; remembers every seq answered 200."""

    def __init__(self, port: int, device_id: str, first_seq: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.device_id, self.seq, self.stop = port, device_id, first_seq, stop
        self.acknowledged: list[int] = []

    def run(self) -> None:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        while not self.stop.is_set():
            now = int(time.time())
            seqs = list(range(self.seq, self.seq + 5))
            readings = [{"seq": s, "ts": now - 10, "t": 20.0, "h": 50.0} for s in seqs]
            body = json.dumps({"device_id": self.device_id, "readings": readings}).encode()
            try:
                conn.request("POST", "/data", body, signing.signed_headers(SECRET, self.device_id, now, "/data", body))
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException):
                return  # the server was killed: whatever had no answer was not acknowledged
            if response.status == 200 and json.loads(answer)["accepted"] == len(seqs):
                self.acknowledged += seqs
            self.seq += len(seqs)


def stored_seqs(store: SQLiteStore, device_id: str) -> set[int]:
    """Every seq stored for the device, page by page (a quiet machine posts over 1,000)."""
    seqs: set[int] = set()
    cursor = None
    while True:
        items, cursor = store.query_readings(device_id, limit=1000, cursor=cursor)
        seqs |= {r["seq"] for r in items}
        if cursor is None:
            return seqs


@pytest.mark.slow
def test_every_acknowledged_reading_survives_kills_under_load(tmp_path):
    data_dir = tmp_path / "data"
    store = registry.local_store(data_dir)
    devices = [f"kill-{n}" for n in range(DEVICES)]
    for device_id in devices:
        store.add_device(device_id, SECRET, 1)
    acknowledged: dict[str, set[int]] = {d: set() for d in devices}
    next_seq = dict.fromkeys(devices, 0)
    for _cycle in range(3):
        process, port = start_serve(data_dir)
        stop = threading.Event()
        posters = [_Poster(port, d, next_seq[d], stop) for d in devices]
        for poster in posters:
            poster.start()
        time.sleep(1.0)
        os.kill(process.pid, signal.SIGKILL)  # mid-write: no shutdown, no checkpoint
        process.wait(timeout=10)
        stop.set()
        for poster in posters:
            poster.join(10)
            acknowledged[poster.device_id] |= set(poster.acknowledged)
            next_seq[poster.device_id] = poster.seq + 5  # past anything possibly half-sent
        reopened = SQLiteStore(data_dir / STORE_FILE)  # the start-up integrity check passes
        for device_id in devices:
            held = stored_seqs(reopened, device_id)
            missing = acknowledged[device_id] - held
            assert not missing, f"{device_id}: acknowledged but gone after a kill: {sorted(missing)[:10]}"
            # The counters commit with the readings: a kill between two writes left `received`
            # short for good, and device health showed stored readings as missing.
            assert reopened.get_device(device_id)["received"] == len(held), device_id
    assert all(len(seqs) > 20 for seqs in acknowledged.values())  # the load was real


def test_readings_and_their_counters_commit_together(tmp_path):
    """The device row's update failing (a real SQLite trigger refusing it) takes the batch's
    readings with it; the re-send then stores and counts them once."""
    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.add_device("porch", SECRET, 1)
    readings = [Reading(seq, 1_800_000_000 + seq, 20.0, 50.0) for seq in range(5)]
    db = sqlite3.connect(tmp_path / "s.sqlite3")
    db.execute("CREATE TRIGGER refuse BEFORE UPDATE ON devices BEGIN SELECT RAISE(ABORT, 'refused'); END")
    db.commit()
    with pytest.raises(sqlite3.IntegrityError):
        store.store_batch(store.get_device("porch"), readings, None, 1_800_000_100, 1_900_000_000)
    assert store.query_readings("porch")[0] == []
    db.execute("DROP TRIGGER refuse")
    db.commit()
    db.close()
    assert len(store.store_batch(store.get_device("porch"), readings, None, 1_800_000_100, 1_900_000_000)) == 5
    assert store.store_batch(store.get_device("porch"), readings, None, 1_800_000_200, 1_900_000_000) == []
    row = store.get_device("porch")
    assert (row["received"], row["first_seq"], row["max_seq"], row["last_seen"]) == (5, 0, 4, 1_800_000_200)


def _damaged_store(tmp_path: Path, how: str) -> Path:
    data_dir = tmp_path / "data"
    store = registry.local_store(data_dir)
    store.add_device("cellar", SECRET, 1)
    path = data_dir / STORE_FILE
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2 + 100])
    elif how == "overwritten":
        path.write_bytes(b"this is not a database" * 400)
    elif how == "garbage appended":
        path.write_bytes(raw + os.urandom(5000))
    elif how == "page torn":
        page = 4096
        path.write_bytes(raw[:page] + os.urandom(page) + raw[2 * page :])
    return path


@pytest.mark.parametrize("how", ["truncated", "overwritten", "garbage appended", "page torn"])
def test_a_damaged_store_is_refused_in_one_line(tmp_path, how):
    path = _damaged_store(tmp_path, how)
    with pytest.raises(StoreDamaged) as refused:
        SQLiteStore(path)
    assert str(path) in str(refused.value) and "backup" in str(refused.value)
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(path.parent), "LISTEN_PORT": "0"}
    run = subprocess.run([DHTLINK, "serve"], capture_output=True, text=True, env=env, timeout=30)
    assert run.returncode == 1
    assert run.stderr.count("\n") == 1 and str(path) in run.stderr and "Traceback" not in run.stderr
    assert "restore a backup or start with an empty data dir" in run.stderr


def test_restart_after_a_kill_serves_at_once(tmp_path):
    data_dir = tmp_path / "data"
    registry.local_store(data_dir).add_device("cellar", SECRET, 1)
    process, _port = start_serve(data_dir)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    process, _port = start_serve(data_dir)  # the -wal left behind is recovered, not refused
    process.terminate()
    process.wait(timeout=10)


def _post_one(port: int, device_id: str, seq: int) -> None:
    import http.client

    now = int(time.time())
    body = json.dumps({"device_id": device_id, "readings": [{"seq": seq, "ts": now - 5, "t": 1.0, "h": 2.0}]}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("POST", "/data", body, signing.signed_headers(SECRET, device_id, now, "/data", body))
    assert conn.getresponse().status == 200
    conn.close()


def test_a_wal_deleted_after_a_kill_is_refused_not_ignored(tmp_path):
    data_dir = tmp_path / "data"
    store = registry.local_store(data_dir)
    store.add_device("cellar", SECRET, 1)
    # Closed now: a connection of this process left to the garbage collector could close after
    # the kill below, as the last one, and checkpoint the -wal it still holds open.
    store.close()
    process, port = start_serve(data_dir)
    _post_one(port, "cellar", 1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    wal = data_dir / (STORE_FILE + "-wal")
    assert wal.stat().st_size > 0  # the acknowledged reading lives there until a checkpoint
    wal.unlink()
    env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(data_dir), "LISTEN_PORT": "0"}
    run = subprocess.run([DHTLINK, "serve"], capture_output=True, text=True, env=env, timeout=30)
    assert run.returncode == 1 and run.stderr.count("\n") == 1
    assert "-wal is missing" in run.stderr and "put it back" in run.stderr


def test_a_clean_stop_leaves_nothing_only_in_the_wal(tmp_path):
    data_dir = tmp_path / "data"
    store = registry.local_store(data_dir)
    store.add_device("cellar", SECRET, 1)
    store.close()  # serve's stop below must be the one that empties the -wal
    process, port = start_serve(data_dir)
    _post_one(port, "cellar", 1)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=10)
    (data_dir / (STORE_FILE + "-wal")).unlink(missing_ok=True)
    (data_dir / (STORE_FILE + "-shm")).unlink(missing_ok=True)
    assert SQLiteStore(data_dir / STORE_FILE).latest_reading("cellar")["seq"] == 1
