"""The node's SQLite spool: seq rules, bounds, crash safety, renumbering, clock moves."""

import os
import signal
import subprocess
import sys
import time

import pytest

from host_tools.node.spool import IN_FLIGHT, MAYBE_STORED, NEVER_SENT, Spool, SpoolError


def test_seqs_increase_across_restarts_and_are_never_reused(tmp_path):
    spool = Spool(tmp_path)
    assert [spool.append(1000 + i, 200, 500) for i in range(3)] == [0, 1, 2]
    spool.ack(spool.peek(3))
    spool.close()
    spool = Spool(tmp_path)  # a restart with an empty spool still knows the next seq
    assert spool.depth() == 0
    assert spool.append(2000, 201, 501) == 3
    assert [(i.seq, i.ts, i.t10, i.h10) for i in spool.peek(10)] == [(3, 2000, 201, 501)]


def test_full_spool_drops_the_oldest_and_counts(tmp_path):
    spool = Spool(tmp_path, max_items=200)
    for i in range(205):
        spool.append(i, 200, 500)
    # Full at 200: each append into a full spool first drops the oldest 1 % (2 readings).
    assert spool.get("dropped") == spool.get("drop_full") == 6
    assert spool.depth() == 199
    assert spool.peek(1)[0].seq == 6


def test_a_request_cut_by_a_crash_counts_as_maybe_stored(tmp_path):
    spool = Spool(tmp_path)
    for i in range(4):
        spool.append(i, 200, 500)
    spool.mark_in_flight(spool.peek(2))
    states = [s for (s,) in spool.db.execute("SELECT sent FROM readings ORDER BY seq")]
    assert states == [IN_FLIGHT, IN_FLIGHT, NEVER_SENT, NEVER_SENT]
    spool.close()
    spool = Spool(tmp_path)
    states = [s for (s,) in spool.db.execute("SELECT sent FROM readings ORDER BY seq")]
    assert states == [MAYBE_STORED, MAYBE_STORED, NEVER_SENT, NEVER_SENT]
    spool.correct_clock(100)
    assert [i.ts for i in spool.peek(4)] == [0, 1, 102, 103]


def test_renumbering_keeps_order_and_content(tmp_path):
    spool = Spool(tmp_path)
    for i in range(5):
        spool.append(100 + i, 200 + i, 500)
    spool.ack(spool.peek(1))
    assert spool.renumber_from(2) == (2, 5)  # overlapping ranges: the old 2-4 become 2-5
    assert [(i.seq, i.ts, i.t10) for i in spool.peek(10)] == [
        (2, 101, 201),
        (3, 102, 202),
        (4, 103, 203),
        (5, 104, 204),
    ]
    assert spool.append(200, 300, 500) == 6


def test_renumbering_is_all_or_nothing(tmp_path):
    spool = Spool(tmp_path)
    for i in range(3):
        spool.append(i, 200, 500)
    with pytest.raises(OverflowError):
        spool.renumber_from(2**63)
    assert [i.seq for i in spool.peek(3)] == [0, 1, 2]
    assert spool.get("next_seq") == 3


def test_a_damaged_file_is_reported_not_replaced(tmp_path):
    (tmp_path / "spool.sqlite").write_bytes(b"not a database, but someone's file" * 100)
    with pytest.raises(SpoolError, match="spool.sqlite"):
        Spool(tmp_path)
    assert (tmp_path / "spool.sqlite").read_bytes().startswith(b"not a database")


WRITER = """
import sys
from host_tools.node.spool import Spool
spool = Spool(sys.argv[1])
i = 0
while True:
    seq = spool.append(1_800_000_000 + i, 200, 500)
    print(seq, flush=True)
    i += 1
"""


def test_a_kill_mid_write_loses_nothing_that_was_stored(tmp_path):
    # SIGKILL is as abrupt as a process can end; power loss additionally needs the fsync
    # that synchronous=FULL gives each commit.
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    confirmed = []
    deadline = time.monotonic() + 30
    while len(confirmed) < 200 and time.monotonic() < deadline:
        confirmed.append(int(writer.stdout.readline()))
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    spool = Spool(tmp_path)
    seqs = [i.seq for i in spool.peek(100_000)]
    assert seqs[: len(confirmed)] == confirmed
    assert seqs == list(range(len(seqs)))
    assert spool.append(0, 200, 500) == len(seqs)


def test_status_reads_while_the_node_writes(tmp_path):
    writer = Spool(tmp_path)
    writer.append(1, 200, 500)
    writer.note(last_send="sent 1 readings, seq 0-0", last_send_at=5)
    writer.db.execute("BEGIN IMMEDIATE")  # the node mid-transaction
    writer.db.execute("INSERT INTO readings (seq, ts, t10, h10) VALUES (1, 2, 200, 500)")
    reader = Spool(tmp_path, readonly=True)
    snap = reader.snapshot()
    assert snap["spool_depth"] == 1 and snap["last_send"] == "sent 1 readings, seq 0-0"
    writer.db.execute("COMMIT")
    assert reader.snapshot()["spool_depth"] == 2
