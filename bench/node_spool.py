"""Which spool for the Linux node: SQLite in WAL mode, or the firmware's record file?

Runs the same work on each candidate in a fresh directory and prints, per candidate:
append latency (median, p99), one acknowledgement of a 20-reading batch, renumbering
every spooled reading (the 409 seq_conflict reaction), bytes on disk per reading, and
whether a SIGKILL in the middle of appending left every confirmed reading readable.

Candidates:
  sqlite-full    host_tools/node/spool.py as shipped: WAL, synchronous=FULL (fsync per commit)
  sqlite-normal  the same file with synchronous=NORMAL (WAL: no fsync per commit)
  firmware       device/spool.py under CPython, as on the board (no fsync)
  firmware+fsync the same with an fsync of the data file after each append and of the
                 state file after each write, which a Linux page cache needs to survive power loss

    .venv/bin/python bench/node_spool.py [--readings 2000] [--json]
"""

import argparse
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from host_tools.node.spool import Spool  # noqa: E402

BATCH = 20


def firmware_spool_class():
    spec = importlib.util.spec_from_file_location("firmware_spool", ROOT / "device" / "spool.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Spool


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SqliteCandidate:
    def __init__(self, directory: Path, synchronous: str) -> None:
        self.spool = Spool(directory, max_items=10**7)
        self.spool.db.execute(f"PRAGMA synchronous={synchronous}")
        self.directory = directory

    def append(self, i: int) -> None:
        self.spool.append(1_800_000_000 + i, 214, 452)

    def ack_batch(self) -> None:
        self.spool.ack(self.spool.peek(BATCH))

    def renumber(self) -> None:
        self.spool.renumber_from(10**6)

    def disk_bytes(self) -> int:
        self.spool.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(p.stat().st_size for p in self.directory.iterdir())


class FirmwareCandidate:
    """device/spool.py has no renumbering: the closest equivalent is a rewrite of every
    record under new seqs into a new generation, which is what is timed."""

    def __init__(self, directory: Path, fsync: bool) -> None:
        self.prefix = str(directory / "spool")
        self.spool = firmware_spool_class()(max_items=10**7, prefix=self.prefix)
        self.directory = directory
        self.fsync = fsync

    def append(self, i: int) -> None:
        self.spool.append(1_800_000_000 + i, 214, 452, True)
        if self.fsync:
            _fsync(self.spool._data())

    def ack_batch(self) -> None:
        self.spool.ack(len(self.spool.peek(BATCH)))
        if self.fsync:
            _fsync(self.prefix + ".state")
            _fsync(str(self.directory))

    def renumber(self) -> None:
        items = self.spool.peek(10**7)
        fresh = firmware_spool_class()(max_items=10**7, prefix=self.prefix + "-renumbered")
        fresh.next_seq = 10**6
        for _, ts, t10, h10 in items:
            fresh.append(ts, t10, h10, True)
        if self.fsync:
            _fsync(fresh._data())

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.directory.iterdir() if "renumbered" not in p.name)


def measure(name: str, make, readings: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        candidate = make(Path(tmp))
        latencies = []
        for i in range(readings):
            started = time.perf_counter()
            candidate.append(i)
            latencies.append(time.perf_counter() - started)
        acks = []
        for _ in range(max(1, min(5, readings // BATCH // 2))):  # half or more stays for the renumbering
            started = time.perf_counter()
            candidate.ack_batch()
            acks.append(time.perf_counter() - started)
        started = time.perf_counter()
        candidate.renumber()
        renumber_s = time.perf_counter() - started
        size = candidate.disk_bytes()
    latencies.sort()
    return {
        "candidate": name,
        "append_median_ms": round(statistics.median(latencies) * 1000, 3),
        "append_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "ack_batch_median_ms": round(statistics.median(acks) * 1000, 3),
        "renumber_all_ms": round(renumber_s * 1000, 1),
        "disk_bytes_per_reading": round(size / readings, 1),
    }


KILL_WRITER = """
import sys
sys.path.insert(0, sys.argv[2])
from host_tools.node.spool import Spool
spool = Spool(sys.argv[1])
i = 0
while True:
    print(spool.append(i, 214, 452), flush=True)
    i += 1
"""


def kill_test(confirm: int = 300) -> dict:
    """SIGKILL the shipped spool's writer mid-stream: every confirmed seq must be there."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([sys.executable, "-c", KILL_WRITER, tmp, str(ROOT)], stdout=subprocess.PIPE, text=True)
        confirmed = [int(proc.stdout.readline()) for _ in range(confirm)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        spool = Spool(tmp)
        seqs = [item.seq for item in spool.peek(10**6)]
        spool.close()
    return {
        "confirmed": len(confirmed),
        "present": len(seqs),
        "all_confirmed_kept": seqs[: len(confirmed)] == confirmed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    candidates = [
        ("sqlite-full", lambda d: SqliteCandidate(d, "FULL")),
        ("sqlite-normal", lambda d: SqliteCandidate(d, "NORMAL")),
        ("firmware", lambda d: FirmwareCandidate(d, fsync=False)),
        ("firmware+fsync", lambda d: FirmwareCandidate(d, fsync=True)),
    ]
    rows = [measure(name, make, args.readings) for name, make in candidates]
    kill = kill_test()
    load = os.getloadavg()
    if args.json:
        print(json.dumps({"rows": rows, "sigkill": kill, "loadavg": load}, indent=2))
        return
    print(f"node spool candidates, {args.readings} readings each (load average {load[0]:.2f} {load[1]:.2f})")
    header = f"{'candidate':<16}{'append p50':>12}{'append p99':>12}{'ack 20':>10}{'renumber all':>14}{'bytes/rdg':>11}"
    print(header)
    for r in rows:
        print(
            f"{r['candidate']:<16}{r['append_median_ms']:>10.3f}ms{r['append_p99_ms']:>10.3f}ms"
            f"{r['ack_batch_median_ms']:>8.3f}ms{r['renumber_all_ms']:>12.1f}ms{r['disk_bytes_per_reading']:>11}"
        )
    print(
        f"SIGKILL mid-append (sqlite-full): {kill['confirmed']} confirmed, {kill['present']} present, "
        f"every confirmed reading kept: {kill['all_confirmed_kept']}"
    )


if __name__ == "__main__":
    main()
