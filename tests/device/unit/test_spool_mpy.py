import json
import textwrap


def spool(max_items, body=""):
    """A snippet that opens the spool (as a boot does) and runs body."""
    return f"import spool, json\nsp = spool.Spool(max_items={max_items})\n" + textwrap.dedent(body)


def test_fifo_ack_and_seq_across_reboots(mpy):
    out = mpy.json(
        spool(
            100,
            """
        for i in range(10):
            sp.append(1795000000 + i, 200 + i, 500, True)
        first = sp.peek(4)
        sp.ack(4)
        print(json.dumps([first, sp.depth(), sp.next_seq]))
    """,
        )
    )
    assert out[0] == [[i, 1795000000 + i, 200 + i, 500] for i in range(4)]
    assert out[1:] == [6, 10]
    rebooted = mpy.json(
        spool(
            100,
            """
        sp.append(1795000100, 1, 1, True)
        print(json.dumps([sp.depth(), sp.next_seq, sp.peek(1)]))
    """,
        )
    )
    assert rebooted == [7, 11, [[4, 1795000004, 204, 500]]]


def test_seq_never_reused_after_everything_is_acked(mpy):
    mpy.run(
        spool(
            100,
            """
        for i in range(5):
            sp.append(1795000000 + i, 1, 1, True)
        sp.ack(5)
    """,
        )
    )
    assert mpy.json(spool(100, "print(json.dumps([sp.depth(), sp.next_seq]))")) == [0, 5]


def test_bound_drops_oldest_and_counts_it(mpy):
    out = mpy.json(
        spool(
            20,
            """
        for i in range(30):
            sp.append(1795000000 + i, 1, 1, True)
        print(json.dumps([sp.depth(), sp.dropped, sp.peek(1)[0][0]]))
    """,
        )
    )
    depth, dropped, oldest = out
    assert depth <= 20 and dropped == 30 - depth and oldest == dropped
    causes = mpy.json(spool(20, "print(json.dumps([sp.dropped, sp.drops]))"))
    assert causes == [dropped, {"drop_full": dropped, "drop_clock": 0, "drop_poison": 0}], "kept across a reboot"


def test_torn_last_record_loses_only_that_record(mpy):
    mpy.run(
        spool(
            100,
            """
        for i in range(8):
            sp.append(1795000000 + i, i, i, True)
    """,
        )
    )
    whole = (mpy.workdir / "spool.0").read_bytes()
    state = (mpy.workdir / "spool.state").read_bytes() if (mpy.workdir / "spool.state").exists() else None
    for cut in range(len(whole) - 16, len(whole)):
        # A fresh flash image torn at `cut`: the power failed while the last record was written.
        for path in mpy.workdir.iterdir():
            if path.name.startswith("spool"):
                path.unlink()
        (mpy.workdir / "spool.0").write_bytes(whole[:cut])
        if state is not None:
            (mpy.workdir / "spool.state").write_bytes(state)
        out = mpy.json(
            spool(
                100,
                """
            kept = [r[0] for r in sp.peek(100)]
            sp.append(1795000100, 9, 9, True)
            print(json.dumps([kept, [r[0] for r in sp.peek(100)]]))
        """,
            )
        )
        assert out == [list(range(7)), list(range(8))], f"cut at byte {cut}"


def test_corrupt_last_record_is_ignored_and_appends_continue(mpy):
    mpy.run(
        spool(
            100,
            """
        for i in range(3):
            sp.append(1795000000 + i, i, i, True)
    """,
        )
    )
    data = mpy.workdir / "spool.0"
    raw = bytearray(data.read_bytes())
    raw[-3] ^= 0xFF
    data.write_bytes(bytes(raw))
    out = mpy.json(
        spool(
            100,
            """
        sp.append(1795000009, 9, 9, True)
        print(json.dumps([r[0] for r in sp.peek(10)]))
    """,
        )
    )
    assert out == [0, 1, 2]


def test_unsynced_readings_wait_for_the_clock_then_convert(mpy):
    out = mpy.json(
        spool(
            100,
            """
        sp.new_clock_epoch()
        sp.append(946684900, 1, 1, False)   # RTC at 2000-01-01 + 100 s
        sp.append(946684960, 2, 2, False)
        waiting = sp.peek(10)
        sp.set_clock_offset(1795000000 - 946684960)   # the clock is set 0 s after the second reading
        print(json.dumps([waiting, [r[1] for r in sp.peek(10)]]))
    """,
        )
    )
    assert out == [[], [1795000000 - 60, 1795000000]]


def test_readings_from_an_epoch_that_never_got_a_clock_are_dropped_and_counted(mpy):
    out = mpy.json(
        spool(
            100,
            """
        sp.new_clock_epoch()
        sp.append(946684900, 1, 1, False)
        sp.new_clock_epoch()                 # power lost again before the clock was set
        sp.append(946684800, 2, 2, False)
        sp.set_clock_offset(1795000000 - 946684800)
        print(json.dumps([[r[0] for r in sp.peek(10)], sp.dropped, sp.drops]))
    """,
        )
    )
    assert out == [[1], 1, {"drop_full": 0, "drop_clock": 1, "drop_poison": 0}]


def test_compaction_keeps_unacked_records(mpy):
    out = mpy.json(
        spool(
            1000,
            """
        for i in range(400):
            sp.append(1795000000 + i, 1, 1, True)
        sp.ack(300)
        import os
        files = [f for f in os.listdir() if f.startswith("spool.") and f[6:].isdigit()]
        print(json.dumps([sp.peek(1)[0][0], sp.depth(), files, os.stat(files[0])[6]]))
    """,
        )
    )
    first, depth, files, size = out
    assert (first, depth) == (300, 100) and len(files) == 1 and size == 100 * 16


def test_a_full_spool_stays_bounded_on_flash(mpy):
    # While the receiver is unreachable for days the spool keeps dropping the oldest:
    # the data file must be compacted as it goes, not grow until the flash is full.
    out = mpy.json(
        spool(
            100,
            """
        import os
        biggest = 0
        for i in range(2000):
            sp.append(1795000000 + i, 1, 1, True)
            biggest = max(biggest, os.stat(sp._data())[6])
        print(json.dumps([sp.depth(), sp.dropped, sp.peek(1)[0][0], biggest]))
    """,
        )
    )
    depth, dropped, oldest, biggest = out
    assert depth <= 100 and dropped == 2000 - depth and oldest == dropped
    assert biggest <= 2 * 4096 + 2 * 100 * 16


def test_flash_bytes_written_per_reading(mpy):
    # Every byte the spool writes goes through open(); count them over 1000 readings sent
    # in batches of 20 (docs/firmware.md quotes this figure).
    out = mpy.json(
        spool(
            5000,
            """
        import builtins
        written = [0]
        class Counting:
            def __init__(self, f):
                self.f = f
            def write(self, b):
                written[0] += len(b)
                return self.f.write(b)
            def __getattr__(self, name):
                return getattr(self.f, name)
            def __enter__(self):
                return self
            def __exit__(self, *a):
                self.f.close()
        def counting_open(path, mode="r"):
            return Counting(builtins.open(path, mode))
        spool.open = counting_open
        for i in range(1000):
            sp.append(1795000000 + i, 215, 450, True)
            if sp.depth() == 20:
                sp.ack(len(sp.peek(20)))
        print(json.dumps(written[0] / 1000))
    """,
        )
    )
    assert 16 <= out <= 24
    print("flash bytes per reading:", out)


def test_drops_are_counted_per_cause_and_total(mpy):
    out = mpy.json(
        spool(
            10,
            """
        sp.new_clock_epoch()
        sp.append(946684900, 1, 1, False)    # its epoch never gets a clock
        sp.new_clock_epoch()
        sp.set_clock_offset(1795000000 - 946684800)
        for i in range(14):
            sp.append(1795000000 + i, 1, 1, True)   # 15 readings in a spool of 10
        sp.peek(3)
        sp.drop(2, sp.POISON)
    """,
        )
        + "sp = spool.Spool(10)\nprint(json.dumps([sp.dropped, sp.drops, sp.depth()]))\n"
    )
    dropped, drops, depth = out
    assert drops["drop_poison"] == 2 and drops["drop_full"] >= 1
    assert dropped == sum(drops.values()) and depth == 15 - dropped


def test_an_offset_once_known_never_changes_a_sent_readings_ts(mpy):
    # A re-send must be byte-for-byte the first send (the receiver tells a re-send from a
    # seq conflict by content): a second clock setting in the same epoch must not move it.
    out = mpy.json(
        spool(
            100,
            """
        sp.new_clock_epoch()
        sp.append(946684900, 1, 1, False)
        sp.set_clock_offset(1795000000 - 946684900)
        first = sp.peek(1)
        sp.set_clock_offset(1795003600 - 946684900)     # the clock set again, an hour later
        again = sp.peek(1)
        sp = spool.Spool(100)                           # and after a reboot
        print(json.dumps([first, again, sp.peek(1)]))
    """,
        )
    )
    assert out[0] == out[1] == out[2] == [[0, 1795000000, 1, 1]]


def test_renumbering_keeps_every_reading_and_its_ts(mpy):
    out = mpy.json(
        spool(
            100,
            """
        sp.new_clock_epoch()
        sp.append(946684900, 7, 7, False)           # converted once the clock is known
        sp.set_clock_offset(1795000000 - 946684900)
        for i in range(39):
            sp.append(1795000001 + i, i, 500, True)
        sp.ack(5)
        before = sp.peek(100)
        sp.renumber(1000)
        after = sp.peek(100)
        sp.append(1795000100, 1, 1, True)
        sp = spool.Spool(100)
        print(json.dumps([before, after, sp.next_seq, sp.peek(100)[-1][0]]))
    """,
        )
    )
    before, after, next_seq, last = out
    assert [r[1:] for r in after] == [r[1:] for r in before] and len(after) == 35
    assert [r[0] for r in after] == list(range(1000, 1035))
    assert (next_seq, last) == (1036, 1035)


def test_renumbering_from_a_conflict_keeps_the_seqs_below_it(mpy):
    out = mpy.json(
        spool(
            100,
            """
        for i in range(10):
            sp.append(1795000000 + i, i, 500, True)
        sp.ack(2)
        sp.renumber(700, 6)
        sp = spool.Spool(100)
        print(json.dumps([[r[0] for r in sp.peek(100)], sp.next_seq]))
    """,
        )
    )
    assert out == [[2, 3, 4, 5, 700, 701, 702, 703], 704]


def test_renumbering_nothing_leaves_next_seq(mpy):
    out = mpy.json(
        spool(
            100,
            """
        for i in range(3):
            sp.append(1795000000 + i, i, 500, True)
        sp.renumber(700, 50)
        print(json.dumps([[r[0] for r in sp.peek(100)], sp.next_seq]))
    """,
        )
    )
    assert out == [[0, 1, 2], 3]


# Each step of a renumbering that touches flash: a write (cut half-way through, so the
# bytes on flash are torn), a rename, a remove. PowerCut is raised in place of the step.
POWER_CUT = """
import os as _os
class PowerCut(Exception):
    pass
steps = [0]
cut_at = [-1]
def _step():
    if steps[0] == cut_at[0]:
        raise PowerCut()
    steps[0] += 1
class CutFile:
    def __init__(self, f):
        self.f = f
    def write(self, b):
        if steps[0] == cut_at[0]:
            self.f.write(b[: len(b) // 2])
        _step()
        return self.f.write(b)
    def __getattr__(self, name):
        return getattr(self.f, name)
    def __enter__(self):
        return self
    def __exit__(self, *a):
        self.f.close()
class CutOs:
    def rename(self, a, b):
        _step()
        _os.rename(a, b)
    def remove(self, p):
        _step()
        _os.remove(p)
    def __getattr__(self, name):
        return getattr(_os, name)
def cut_open(path, mode="r"):
    return CutFile(open(path, mode))
"""


def test_a_power_cut_at_any_step_of_renumbering_loses_nothing_and_duplicates_nothing(mpy):
    mpy.fake("powercut", POWER_CUT)
    # The results of every run are collected in one process: more heap than the board's.
    runs = json.loads(
        mpy.run(
            """
        import json, os, spool, powercut
        def fresh():
            for f in os.listdir():
                if f.startswith("spool"):
                    os.remove(f)
            sp = spool.Spool(100)
            sp.new_clock_epoch()
            sp.append(946684900, 7, 7, False)
            sp.set_clock_offset(1795000000 - 946684900)
            for i in range(44):          # more than one 32-record chunk is rewritten
                sp.append(1795000001 + i, i, 500, True)
            sp.ack(5)
            return sp
        runs = []
        for k in range(100):
            sp = fresh()
            spool.open, spool.os = powercut.cut_open, powercut.CutOs()
            powercut.steps[0], powercut.cut_at[0] = 0, k
            try:
                sp.renumber(1000)
                done = True
            except powercut.PowerCut:
                done = False
            spool.open, spool.os = open, os
            sp = spool.Spool(100)          # the next boot
            files = sorted(f for f in os.listdir() if f.startswith("spool"))
            runs.append([k, done, sp.peek(100), sp.next_seq, files])
            if done:
                break
        print(json.dumps(runs))
    """,
            heap="1m",
        ).splitlines()[-1]
    )
    assert runs[-1][1], "the last run completes the renumbering"
    assert len(runs) >= 5, "cuts during the data writes, the state write, the rename and the remove"
    expected = [[1795000000 + i, i - 1 if i else 7, 500 if i else 7] for i in range(5, 45)]
    for k, _, items, next_seq, files in runs:
        assert [r[1:] for r in items] == expected, f"cut at step {k}: a reading lost, changed or doubled"
        seqs = [r[0] for r in items]
        assert seqs in (list(range(5, 45)), list(range(1000, 1040))), f"cut at step {k}: mixed numbering {seqs}"
        assert next_seq > seqs[-1], f"cut at step {k}: next_seq {next_seq} would reuse a seq"
        data = [f for f in files if f[6:].isdigit()]
        assert len(data) == 1, f"cut at step {k}: generations left behind {files}"
    assert runs[0][2][0][0] == 5 and runs[-1][2][0][0] == 1000
